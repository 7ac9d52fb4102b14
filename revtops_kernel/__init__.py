"""Revtops Workbench: a revenue copilot for RevOps analysts, built around Jupyter.

    from revtops_kernel import ChatPanel, ask, sql
    ChatPanel()                     # the chat panel (ipywidgets)
    sql("SELECT name, amount FROM deals ORDER BY amount DESC LIMIT 5")   # a DataFrame
    %load_ext revtops_kernel        # %%ask and %sql / %%sql magics

Names are imported lazily so that ``import revtops_kernel`` (and the CLI) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ChatPanel": "revtops_kernel.ui.chat_panel",
    "ask": "revtops_kernel.api",
    "sql": "revtops_kernel.api",
    "load_ipython_extension": "revtops_kernel.ui.magics",
    "unload_ipython_extension": "revtops_kernel.ui.magics",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'revtops_kernel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
