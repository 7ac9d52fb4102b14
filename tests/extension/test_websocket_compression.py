"""The server extension turns permessage-deflate on for Jupyter Server's kernel websockets
(JupyterLab, Notebook) unless the server's configuration already decides it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from revtops_server import compress_kernel_websockets
from traitlets.config import Config


def server(**options: Any) -> Any:
    config = Config()
    for name, value in options.items():
        setattr(config.ServerApp, name, value)
    return SimpleNamespace(config=config, web_app=SimpleNamespace(settings={"base_url": "/"}))


def test_kernel_websockets_are_compressed_by_default() -> None:
    app = server()
    compress_kernel_websockets(app)
    assert app.web_app.settings["websocket_compression_options"] == {}


def test_a_configured_setting_stands_off_or_tuned() -> None:
    off = server(websocket_compression_options=None)
    tuned = server(websocket_compression_options={"compression_level": 1})
    for app in (off, tuned):
        compress_kernel_websockets(app)
        assert "websocket_compression_options" not in app.web_app.settings
