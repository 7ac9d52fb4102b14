"""Execute one notebook with papermill and describe how it failed, if it did.

The kernel can be given its own environment (``env``): papermill passes no ``env`` through to
the kernel's launch, so a kernel manager class carrying it is handed to nbclient instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCE_EXCERPT_CHARS = 400
# Run by a kernel given its own environment before any cell: PR_SET_DUMPABLE 0, so another
# run's kernel (same OS user, another organization) cannot read this one's environment or
# memory through /proc. A kernel may undo it for itself only. A no-op off Linux.
UNDUMPABLE_KERNEL = (
    "--IPKernelApp.exec_lines="
    "import sys as _s, ctypes as _c; "
    "_s.platform.startswith('linux') and _c.CDLL(None).prctl(4, 0, 0, 0, 0); "
    "del _s, _c"
)
# The kernel talks to the runner over loopback TCP inside one machine; ipykernel's warning about
# unencrypted TCP, printed at every run, only cluttered the run's stderr.
QUIET_KERNEL = "--IPKernelApp.log_level=ERROR"
KERNEL_ARGUMENTS = (UNDUMPABLE_KERNEL, QUIET_KERNEL)  # for every kernel a run starts


@dataclass(frozen=True)
class NotebookFailure:
    """Where and how a notebook failed: the cell, its source (shortened), the exception."""

    cell_index: int | None
    source: str
    exception: str
    message: str

    def describe(self) -> str:
        where = f"cell {self.cell_index}" if self.cell_index is not None else "the notebook"
        excerpt = self.source.strip()
        if len(excerpt) > SOURCE_EXCERPT_CHARS:
            excerpt = excerpt[:SOURCE_EXCERPT_CHARS] + "…"
        text = f"{self.exception}: {self.message} (in {where})"
        return f"{text}\n--- source of {where} ---\n{excerpt}" if excerpt else text


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: dict[str, Any],
    *,
    kernel_name: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    kernel_manager: Any = None,
) -> NotebookFailure | None:
    """Run ``notebook`` into ``output`` with ``parameters`` injected; None on success.

    The output notebook is written even when a cell fails (papermill saves as it goes), so the
    failing cell's traceback can be read there. ``env`` is the kernel's whole environment
    (default: this process's). ``kernel_manager``: a kernel already started for this run
    (``scheduling.warm``), used instead of starting one; the caller shuts it down.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(cwd or notebook.parent),
            progress_bar=False,
            log_output=False,
            **_kernel_options(env, kernel_manager),
        )
    except PapermillExecutionError as exc:
        return NotebookFailure(
            cell_index=_cell_index(output, exc.exec_count, exc.cell_index),
            source=str(exc.source or ""),
            exception=str(exc.ename),
            message=str(exc.evalue),
        )
    return None


def _kernel_options(env: Mapping[str, str] | None, kernel_manager: Any) -> dict[str, Any]:
    if kernel_manager is not None:
        return {"km": kernel_manager}  # nbclient leaves a kernel it was given running
    if env is not None:
        return {"kernel_manager_class": _with_environment(env)}
    return {}


def _with_environment(env: Mapping[str, str]) -> type:
    """A kernel manager class that starts (and restarts) its kernel with ``env`` as the whole
    environment (imported here: jupyter_client is papermill's, loaded only to run)."""
    from jupyter_client.manager import AsyncKernelManager

    kernel_env = dict(env)

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = dict(kernel_env)
            extra = [*kw.get("extra_arguments", []), *KERNEL_ARGUMENTS]
            kw["extra_arguments"] = extra
            await super().start_kernel(**kw)

    return RunKernelManager


def _cell_index(output: Path, exec_count: int | None, papermill_index: int | None) -> int | None:
    """The failing cell's index in the *input* notebook's numbering.

    Papermill's ``cell_index`` counts the cells of the output notebook, which has its injected
    parameters cell added (and an error banner cell on failure); the execution count identifies
    the cell either way, so map back through the output and skip papermill's own cells.
    """
    try:
        import nbformat

        executed = nbformat.read(str(output), as_version=4)
    except Exception:  # the output may be unreadable if the kernel died mid-write
        return papermill_index
    index = 0
    for cell in executed.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        if cell.get("cell_type") == "code" and cell.get("execution_count") == exec_count:
            return index
        index += 1
    return papermill_index
