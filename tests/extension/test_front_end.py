"""The app page's light front end as served: its setting, its page, its assets and licenses."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from revtops_server import voila_app
from revtops_server.voila_app import FRONTEND_ENV, STATIC, asset_urls, front_end, page_settings

from tests.browser.app_server import RunningApp, running_app


def test_the_light_front_end_is_the_default_and_voilas_stays_one_setting_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(FRONTEND_ENV, raising=False)
    assert front_end() == "light"
    monkeypatch.setenv(FRONTEND_ENV, " Voila ")
    assert front_end() == "voila"
    assert page_settings()["resources"]["revtops_frontend"] == "voila"
    monkeypatch.setenv(FRONTEND_ENV, "jupyterlab")
    with pytest.raises(ValueError, match="light, voila"):
        front_end()


def test_asset_urls_carry_their_contents_hash() -> None:
    urls = asset_urls()
    for kind, name in (("js", "app.js"), ("css", "app.css")):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16]
        assert urls[kind] == f"revtops/static/{name}?v={digest}"


def test_the_bundle_ships_the_licenses_of_what_it_bundles() -> None:
    notices = (STATIC / "THIRD_PARTY_LICENSES.txt").read_text()
    for package in (
        "@jupyterlab/services",
        "@jupyter-widgets/html-manager",
        "@jupyter-widgets/controls",
        "@jupyter-widgets/base",
        "@lumino/widgets",
        "anywidget",
        "@fortawesome/fontawesome-free",
        "jquery",
    ):
        assert re.search(rf"^{re.escape(package)} \d+\.\d+\.\d+ \(", notices, re.M), package
    # ipywidgets 7's models are left out of the bundle (the kernel runs ipywidgets 8)
    assert "@jupyter-widgets/controls7" not in notices


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("front-end"), pool_size=1) as running:
        running.create_org("Acme", "acme.com")
        yield running


@pytest.mark.slow
def test_the_page_loads_the_module_and_nothing_of_voilas_front_end(app: RunningApp) -> None:
    token = app.token("ana@acme.com", "Ana")
    page = httpx.get(app.url + "/", headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert page.status_code == 200
    html = page.text
    urls = asset_urls()
    assert f'<script type="module" src="/{urls["js"]}"></script>' in html
    assert f'id="rt-app-css" href="/{urls["css"]}"' in html
    assert re.findall(r"<script[^>]* src=\"([^\"]+)\"", html) == [f"/{urls['js']}"]
    assert 'rel="preload"' not in html
    assert 'id="rt-shell"' in html  # the first screen is the template's, as before
    assert '"kernelId"' in html  # the module's kernel, from the page's config


@pytest.mark.slow
def test_the_assets_are_served_with_their_fonts(app: RunningApp) -> None:
    urls = asset_urls()
    script = httpx.get(f"{app.url}/{urls['js']}", timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.content == (STATIC / "app.js").read_bytes()
    assert "max-age" in script.headers.get("cache-control", "")  # versioned: cached for long
    style = httpx.get(f"{app.url}/{urls['css']}", timeout=30)
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]
    fonts = re.findall(r'url\("\./(fonts/[^"]+\.woff2)"\)', style.text)
    assert len(fonts) >= 3
    for font in fonts:
        assert (STATIC / font).is_file()
        assert httpx.get(f"{app.url}/revtops/static/{font}", timeout=30).status_code == 200
    for path in ("../voila_app.py", "%2e%2e/voila_app.py"):  # nothing beside the assets
        outside = httpx.get(f"{app.url}/revtops/static/{path}", timeout=30)
        assert "RevtopsVoila" not in outside.text
    assert Path(voila_app.__file__).parent / "static" == STATIC
