"""The local multi-node proof behind `just multinode` (see __main__.py)."""
