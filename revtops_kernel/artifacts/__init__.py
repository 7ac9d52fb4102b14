"""Declarative artifacts: charts, tables, reports and dashboards, with the SQL behind them.

    create_artifact(db, org=..., spec={...})   validate, query through the guard, store -> event
    render_artifact(db, artifact_id, org=...)  re-run the stored spec without the model
    figure_from_spec(spec, df)                  a chart spec over a DataFrame -> Plotly figure
    table_from_spec(spec, df)                   a table spec over a DataFrame -> its columns
    artifact_to_pdf / conversation_to_pdf       WeasyPrint PDFs, charts as vector SVG
    conversation_to_notebook / save_notebook    a runnable .ipynb that papermill can re-run

Names load lazily: the PDF path imports WeasyPrint and matplotlib, which a notebook drawing one
chart does not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ARTIFACT_INPUT_SCHEMA": "revtops_kernel.artifacts.specs",
    "parse_spec": "revtops_kernel.artifacts.specs",
    "figure_from_spec": "revtops_kernel.artifacts.figures",
    "table_from_spec": "revtops_kernel.artifacts.data",
    "create_artifact": "revtops_kernel.artifacts.service",
    "render_artifact": "revtops_kernel.artifacts.service",
    "list_artifacts": "revtops_kernel.artifacts.service",
    "delete_artifact": "revtops_kernel.artifacts.service",
    "RenderedArtifact": "revtops_kernel.artifacts.service",
    "ArtifactNotFoundError": "revtops_kernel.artifacts.service",
    "artifact_to_pdf": "revtops_kernel.artifacts.pdf",
    "conversation_to_pdf": "revtops_kernel.artifacts.pdf",
    "conversation_to_notebook": "revtops_kernel.artifacts.notebook",
    "save_notebook": "revtops_kernel.artifacts.notebook",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'revtops_kernel.artifacts' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
