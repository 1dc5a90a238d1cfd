"""`just chaos`: faults injected under load (see __main__.py)."""
