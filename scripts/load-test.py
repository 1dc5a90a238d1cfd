#!/usr/bin/env python3
"""`just load-test`: runs the load-test runner in scripts/loadtest (see its
__main__.py, or `python3 scripts/load-test.py --help`)."""
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
runpy.run_module("loadtest", run_name="__main__", alter_sys=True)
