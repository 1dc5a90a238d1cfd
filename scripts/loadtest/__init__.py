"""The load-test runner behind `just load-test` (see __main__.py)."""
