"""Compiled bytecode for the test run, even where PYTHONDONTWRITEBYTECODE is set.

Imported first by conftest.py (before anything heavy). Python then writes bytecode under the
virtual environment (``<venv>/pycache``, not beside the sources), and the processes the tests
start (app servers, kernels, workers, CLI runs) inherit the cache: without it each of them
compiles its imports again, about 6 s of CPU per process here (measured: importing anthropic,
nbformat, jupyter_server, pandas, SQLAlchemy and the agent took 13.2 s of CPU from source,
6.9 s from bytecode).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_bytecode() -> None:
    if sys.pycache_prefix is not None or not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return  # bytecode is written already (beside the sources, or where the user said)
    prefix = Path(sys.prefix) / "pycache"
    try:
        prefix.mkdir(exist_ok=True)
    except OSError:
        return  # a read-only environment: compile as before
    sys.pycache_prefix = str(prefix)
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    del os.environ["PYTHONDONTWRITEBYTECODE"]


cache_bytecode()
