"""Helpers every benchmark uses: progress lines on stderr, this process's peak RSS and CPU time.

Benchmarks run as scripts (``.venv/bin/python bench/sync.py``), so this directory is on
``sys.path`` and they import it as ``_common``.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path


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
