"""Helpers every benchmark uses: progress lines on stderr, this process's peak RSS and CPU time,
and a measured child on a frozen code tree.

Benchmarks run as scripts (``.venv/bin/python bench/sync.py``), so this directory is on
``sys.path`` and they import it as ``_common``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def progress(message: str) -> None:
    """One timestamped line on stderr (stdout carries the figures)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """This process's peak RSS since it exec'd. Not ``getrusage`` on Linux: it carries the
    parent's high-water mark into a child's ``ru_maxrss`` at exec (subprocess vforks), so a
    child of the process holding the sandbox would report the sandbox's ~500 MiB as its own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(script: str, environment: dict[str, str], tree: Path, *extra: str) -> dict[str, Any]:
    """Run ``script --child <environment file> --child-out <figures file> *extra`` on the code
    tree ``tree`` (first on PYTHONPATH) and return the figures it wrote, with ``wall_s``."""
    with tempfile.TemporaryDirectory(prefix="revtops_bench_child_") as folder:
        env_file, out = Path(folder) / "environment.json", Path(folder) / "figures.json"
        env_file.write_text(json.dumps(environment))
        command = [sys.executable, str(Path(script).resolve()), "--child", str(env_file)]
        command += ["--child-out", str(out), *extra]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        started = time.monotonic()
        completed = subprocess.run(command, check=False, env=env)
        if completed.returncode != 0 or not out.exists():
            raise SystemExit(f"the child exited with {completed.returncode}")
        figures: dict[str, Any] = json.loads(out.read_text())
    figures["wall_s"] = time.monotonic() - started
    return figures
