"""The panel and the magics in a real kernel (nbclient), against the scripted Messages API.

Assertions read the widget state the kernel sent to the front end (nbclient keeps it in the
notebook's metadata), so they see what JupyterLab would draw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from tests.ui.notebook_env import (
    PIPELINE_QUESTION,
    PIPELINE_SQL,
    pipeline_turns,
    point_kernel_at,
    prepare_store,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def api() -> Iterator[ScriptedMessagesServer]:
    with ScriptedMessagesServer() as server:
        yield server


def run_notebook(cells: list[str], directory: Path) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    for cell in notebook.cells:
        if cell.source.startswith("# raises"):
            cell.metadata["tags"] = ["raises-exception"]
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        store_widget_state=True,
        resources={"metadata": {"path": str(directory)}},
    )
    client.execute()
    return notebook


def widget_states(notebook: nbformat.NotebookNode) -> list[dict[str, Any]]:
    saved = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return list(saved.values())


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_panel_answers_in_a_real_kernel(
    api: ScriptedMessagesServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_kernel_at(monkeypatch, api, prepare_store(tmp_path))
    api.script(*pipeline_turns())
    notebook = run_notebook(
        [
            "from revtops_kernel import ChatPanel\npanel = ChatPanel(suggestions=[])\npanel",
            f"panel.ask({PIPELINE_QUESTION!r})\nanswer = panel.wait(120)\n"
            "print(answer.stop_reason, answer.error, answer.text_updates)\n"
            "print(panel.timezone)\n"
            "import json; print(json.dumps(panel.state.snapshot()))",
        ],
        tmp_path,
    )
    printed = text_of(notebook.cells[1]).split("\n")
    assert printed[0].startswith("end_turn None")
    assert printed[1] == "America/New_York"  # no browser here: the configured zone
    assert notebook.cells[0].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    # then the line a notebook reopened without its widgets' state shows instead
    fallback = notebook.cells[0].outputs[1]["data"]
    assert "when this cell runs" in fallback["text/html"]
    assert set(fallback) == {"text/html", "text/plain"}

    # the page's widget state: one anywidget model, the module and the sanitizer's policy
    (model,) = [s for s in widget_states(notebook) if s["model_name"] == "AnyModel"]
    assert "revtops-chat" in model["state"]["_esm"] and "revtops-chat" in model["state"]["_css"]
    assert "a" in model["state"]["policy"]["tags"]
    assert "turns" not in model["state"]  # the thread travels as messages, not as state

    state = json.loads(printed[2])
    (turn,) = state["turns"]
    assert turn["q"] == PIPELINE_QUESTION and turn["stop"] == "end_turn"
    texts = "".join(i["md"] for i in turn["items"] if i["k"] == "text")
    assert "Let me look at the pipeline." in texts and "**$78,000**" in texts
    assert "<script>alert('model')</script>" in texts  # raw: the browser renders it as text
    tools = [i for i in turn["items"] if i["k"] == "tool"]
    assert tools[0]["sql"] == PIPELINE_SQL and tools[0]["summary"].startswith("4 rows")
    assert ["Closed Lost", 24000] in [r[:2] for r in tools[0]["table"]["rows"]]
    (artifact,) = [i for i in turn["items"] if i["k"] == "artifact"]
    figure = artifact["figs"][0]
    assert figure["data"][0]["type"] == "bar"
    assert set(figure["data"][0]["x"]) == {"Closed Lost", "Closed Won", "Proposal", "Discovery"}
    assert len(api.requests) == 3
    assert "America/New_York" in str(api.requests[0].body["system"])


def test_magics_in_a_real_kernel(
    api: ScriptedMessagesServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_kernel_at(monkeypatch, api, prepare_store(tmp_path))
    api.script(
        Turn.tool("run_sql_query", {"sql": "SELECT COUNT(*) AS won FROM deals WHERE is_won"}),
        Turn.reply("**3** deals are won. " + "Streaming words. " * 60, event_delay=0.002),
        Turn.reply("Said on one line."),
    )
    notebook = run_notebook(
        [
            "%load_ext revtops_kernel",
            "df = %sql SELECT stage_name, SUM(amount) AS amount FROM deals GROUP BY 1 ORDER BY 2\n"
            "print(type(df).__name__, len(df), list(df.columns))",
            "%%sql -o won\nSELECT name FROM deals WHERE is_won ORDER BY name",
            "print(sorted(won['name']))",
            "%%ask -o reply\nHow many deals are won?",
            "print(reply.text_updates, reply.conversation_id is not None, reply.queries[0].ok)\n"
            "print(get_ipython().transform_cell('%%ask\\nWhy?').startswith('await '))",
            "# raises\n%sql DELETE FROM deals",
            # the line form awaits too; its question keeps its quote and its "?"
            "%ask -o said --new What's the one-line answer?",
            "print(said.question, said.text, said.stop_reason)\n"
            "print(get_ipython().transform_cell('%ask Why?').startswith('await '))",
        ],
        tmp_path,
    )
    assert text_of(notebook.cells[1]).strip() == "DataFrame 4 ['stage_name', 'amount']"
    assert text_of(notebook.cells[3]).strip() == "['Deal 10', 'Deal 2', 'Deal 6']"

    # %%ask shows the chat component (one answer); its display also carries the final answer as
    # static HTML for nbconvert and papermill, and the widget's state keeps the finished turn
    # (a second display, the static copy, shows where the widget cannot draw)
    ask_outputs = notebook.cells[4].outputs
    widget_output, shown = [o for o in ask_outputs if "data" in o]
    view = widget_output["data"]["application/vnd.jupyter.widget-view+json"]
    assert "text/html" not in widget_output["data"]
    assert "application/vnd.jupyter.widget-view+json" not in shown["data"]
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    model = states[view["model_id"]]["state"]
    assert model["mode"] == "answer"
    (turn,) = model["saved"]["turns"]
    assert turn["q"] == "How many deals are won?" and turn["stop"] == "end_turn"
    html = shown["data"]["text/html"]
    assert '<div class="rt-static">' in html and "Answering:" not in html
    assert "SELECT COUNT(*) AS won FROM deals WHERE is_won" in html
    assert "<strong>3</strong> deals are won." in html
    assert html.count("Streaming words.") == 60  # the last update replaced the streaming block
    updates, has_thread, ok, awaited = text_of(notebook.cells[5]).split()
    assert 1 <= int(updates) < 60 and has_thread == "True" and ok == "True"
    assert awaited == "True"  # in a kernel the cell awaits: the widget's Stop gets through

    line_widget, line_static = [o for o in notebook.cells[7].outputs if "data" in o]
    assert "application/vnd.jupyter.widget-view+json" in line_widget["data"]
    assert "Said on one line." in line_static["data"]["text/html"]
    assert text_of(notebook.cells[8]).split("\n") == [
        "What's the one-line answer? Said on one line. end_turn",
        "True",
        "",
    ]

    refusal = notebook.cells[6].outputs  # IPython prints a UsageError's message, no traceback
    assert [o.get("name") for o in refusal] == ["stderr"]
    assert refusal[0]["text"].startswith(
        "UsageError: QueryRefusedError: refused: only a read-only SELECT"
    )
