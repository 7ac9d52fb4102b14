"""The app page's preload list: what it records, what it keeps, and that it fits the installed
front end (a Voila, ipywidgets or anywidget upgrade renames chunks: re-record the list)."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import DictLoader, Environment
from revtops_server.page_preload import (
    PRELOAD_LIST,
    entry_for,
    installed,
    labextension_dirs,
    load_preloads,
    write_preloads,
)
from revtops_server.voila_app import EXTENSION_ALLOWLIST, TEMPLATES, page_settings
from voila.paths import collect_static_paths


def static_dirs() -> list[Path]:
    return [Path(p) for p in collect_static_paths(["voila", "nbconvert"], "lab")]


def test_entries_name_voila_and_lab_extension_scripts_only() -> None:
    assert entry_for("voila/static/7155.voila.js") == {
        "path": "voila/static/7155.voila.js",
        "extension": None,
    }
    scoped = "voila/labextensions/@jupyter-widgets/jupyterlab-manager/static/7.2a0c.js?v=2a0c"
    assert entry_for(scoped) == {"path": scoped, "extension": "@jupyter-widgets/jupyterlab-manager"}
    plain = "voila/labextensions/anywidget/static/remoteEntry.698dcaf7.js"
    assert entry_for(plain) == {"path": plain, "extension": "anywidget"}
    # the template's own head files, the kernel API, stylesheets: not the front end's chain
    for other in (
        "voila/templates/lab/static/voila-style.js?v=1",
        "api/kernels/abc",
        "voila/static/theme.css",
        "voila/labextensions/anywidget/package.json",
    ):
        assert entry_for(other) is None


def test_a_recorded_list_keeps_the_fetch_order_once_each_and_drops_what_is_not_installed(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "preload.json"
    fetched = [
        "voila/static/voila.js",
        "api/kernels/k1",
        "voila/static/5764.voila.js",
        "voila/static/voila.js",  # fetched twice: listed once
        "voila/labextensions/anywidget/static/gone.0000.js",
    ]
    written = write_preloads(fetched, listing)
    assert [e["path"] for e in written] == [fetched[0], fetched[2], fetched[4]]
    assert json.loads(listing.read_text())["scripts"] == written
    # voila.js and the chunk are installed; the renamed anywidget chunk is not
    assert [e["path"] for e in load_preloads(static_dirs(), listing)] == fetched[0:3:2]
    assert load_preloads(static_dirs(), tmp_path / "missing.json") == []


def test_the_committed_list_fits_the_installed_front_end() -> None:
    """Every recorded file is installed (else: `bench/app.py --record-preload`), it starts with
    voila.js, and it holds only the extensions the page loads."""
    recorded = json.loads(PRELOAD_LIST.read_text())["scripts"]
    missing = [e["path"] for e in recorded if not installed(e, static_dirs(), labextension_dirs())]
    assert not missing, f"re-record the preload list (bench/app.py --record-preload): {missing}"
    assert recorded[0]["path"] == "voila/static/voila.js"
    assert {e["extension"] for e in recorded} - {None} <= set(EXTENSION_ALLOWLIST)
    assert page_settings()["resources"]["revtops_preload"] == recorded


def test_the_partial_announces_only_the_extensions_the_page_loads() -> None:
    environment = Environment(loader=DictLoader({}), autoescape=False)
    partial = environment.from_string((TEMPLATES / "preload.html.j2").read_text())
    resources = {
        "base_url": "/app/",
        "page_config": {"federated_extensions": [{"name": "anywidget"}]},
        "revtops_preload": [
            {"path": "voila/static/voila.js", "extension": None},
            {"path": "voila/labextensions/anywidget/static/2.js", "extension": "anywidget"},
            {
                "path": "voila/labextensions/jupyterlab_pygments/static/5.js?v=5",
                "extension": "jupyterlab_pygments",
            },
        ],
    }
    html = partial.render(resources=resources)
    assert html.count('<link rel="preload" as="script"') == 2
    assert 'href="/app/voila/static/voila.js"' in html
    assert 'href="/app/voila/labextensions/anywidget/static/2.js"' in html
    assert "pygments" not in html
    assert "<link" not in partial.render(resources={"base_url": "/", "page_config": {}})
