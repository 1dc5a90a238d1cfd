#!/usr/bin/env python3
"""`just chaos`: runs the fault scenarios in scripts/chaos (see its
__main__.py, or `python3 scripts/chaos.py --help`)."""
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
runpy.run_module("chaos", run_name="__main__", alter_sys=True)
