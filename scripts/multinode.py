#!/usr/bin/env python3
"""`just multinode`: runs the local multi-node proof in scripts/multinode (see
its __main__.py, or `python3 scripts/multinode.py --help`)."""
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
runpy.run_module("multinode", run_name="__main__", alter_sys=True)
