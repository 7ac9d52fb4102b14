"""The scripts Voila's front end fetches for a first render, announced in the page's head.

Voila's front end is a chain of lazy loads: ``voila.js`` sits at the end of the body (read only
once the whole HTML, i.e. the visitor's part of ``app.ipynb``, has arrived), its ~60 chunks load
when it runs, the lab extensions' ``remoteEntry`` files when the window's ``load`` fires, their
chunks after those, and Voila's kernel and output chunks and the widget views' chunks after the
kernel connected: five round trips one after another, each behind JavaScript that had to run
first. ``<link rel="preload">`` tags in the head (``templates/preload.html.j2``) let the browser
fetch all of them while the server still builds the page, so each step finds its files in the
memory cache.

Which files a first render needs is the front end's own business (webpack's chunk graph of the
installed Voila, ipywidgets and anywidget), so the list is recorded from a real visit
(``bench/app.py --record-preload`` writes ``templates/preload.json``) and checked against the
installed files when the app starts: an entry whose file is gone (another Voila version) is left
out, and a page then fetches it the ordinary way. A preload must carry the exact URL (query
included) that the loader asks for, or the browser fetches the file twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from jupyter_core.paths import jupyter_path

PRELOAD_LIST = Path(__file__).resolve().parent / "templates" / "preload.json"
STATIC_PREFIX = "voila/static/"
LABEXTENSIONS_PREFIX = "voila/labextensions/"


class Preload(TypedDict):
    """One script: its URL path below the server's base URL, and the lab extension it belongs
    to (None for Voila's own), so the page announces only the extensions it loads."""

    path: str
    extension: str | None


def entry_for(url_path: str) -> Preload | None:
    """The entry for a script the page fetched (its URL path below the base URL, query
    included), or None if it is not one of Voila's or a lab extension's scripts."""
    path = urlsplit(url_path).path
    if not path.endswith(".js"):
        return None
    if path.startswith(STATIC_PREFIX):
        return {"path": url_path, "extension": None}
    if path.startswith(LABEXTENSIONS_PREFIX) and "/static/" in path:
        name = path[len(LABEXTENSIONS_PREFIX) :].split("/static/", 1)[0]
        return {"path": url_path, "extension": name}
    return None


def labextension_dirs() -> list[Path]:
    """Where Voila looks for lab extensions (`voila.utils.get_voila_labextensions_path`)."""
    return [Path(p) for p in jupyter_path("labextensions")] + [
        Path(p) / "labextensions" for p in jupyter_path("voila")
    ]


def installed(entry: Preload, static_dirs: list[Path], extension_dirs: list[Path]) -> bool:
    """Whether the file behind ``entry`` is installed (Voila serves ``voila/static/`` from its
    templates' static folders and ``voila/labextensions/`` from the lab extension paths)."""
    path = urlsplit(entry["path"]).path
    if entry["extension"] is None:
        relative = path[len(STATIC_PREFIX) :]
        return any((folder / relative).is_file() for folder in static_dirs)
    relative = path[len(LABEXTENSIONS_PREFIX) :]
    return any((folder / relative).is_file() for folder in extension_dirs)


def load_preloads(static_dirs: list[Path], listing: Path = PRELOAD_LIST) -> list[Preload]:
    """The recorded list, without the entries whose files are not installed."""
    if not listing.is_file():
        return []
    recorded: list[Preload] = json.loads(listing.read_text())["scripts"]
    extensions = labextension_dirs()
    return [entry for entry in recorded if installed(entry, static_dirs, extensions)]


def write_preloads(url_paths: list[str], listing: Path = PRELOAD_LIST) -> list[Preload]:
    """Record the scripts a first render fetched, in the order it fetched them."""
    entries: list[Preload] = []
    for url_path in url_paths:
        entry = entry_for(url_path)
        if entry is not None and entry not in entries:
            entries.append(entry)
    note = (
        "Scripts Voila's front end fetches for a first render of the app, in order; "
        "written by bench/app.py --record-preload (see revtops_server/page_preload.py)."
    )
    lines = ",\n".join("  " + json.dumps(entry) for entry in entries)  # one script a line
    listing.write_text(f'{{"note": {json.dumps(note)},\n "scripts": [\n{lines}\n]}}\n')
    return entries
