"""Revtops Workbench's Jupyter Server extension: sign-in and the REST API under /revtops/api/.

Enabled on install by ``jupyter_server_config.d/revtops_server.json``. The same handlers serve
the Voila web app (`voila_app`). `routes` lists every endpoint; `base` is what handlers share.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "revtops_server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    # Imported here: `import revtops_server.supabase` (tests, the sandbox) or Jupyter listing
    # the extension points should not load the whole REST layer with the store and scheduler.
    from .context import SETTINGS_KEY, Context
    from .routes import routes

    web_app = serverapp.web_app
    web_app.settings[SETTINGS_KEY] = Context.create()
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, path), h) for path, h in routes()])
    serverapp.log.info("revtops: REST API at %s", url_path_join(base, "revtops/api/"))
    compress_kernel_websockets(serverapp)


def compress_kernel_websockets(serverapp: Any) -> None:
    """permessage-deflate on the kernel websockets, unless the server's configuration says
    otherwise. Jupyter Server leaves it off (``websocket_compression_options`` None) and reads
    it from ``jupyter_server_config.d`` only for ``jpserver_extensions``, so the extension sets
    it: each chat delta carries ~550 bytes of Jupyter headers, and a streamed answer costs
    9x its text on the wire uncompressed, ~1x compressed (bench/chat_stream.py --lab). Set
    ``ServerApp.websocket_compression_options = None`` to keep it off."""
    if "websocket_compression_options" in serverapp.config.get("ServerApp", {}):
        return  # configured (on, off or tuned): the server's own setting stands
    serverapp.web_app.settings["websocket_compression_options"] = {}
