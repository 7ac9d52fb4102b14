"""No cross-origin access: the API and the sign-in pages answer their own origin only.

Jupyter Server echoes any ``Origin`` in ``Access-Control-Allow-Origin`` on token-authenticated
requests (and on preflights asking for ``Authorization``), which would let any site read a
bearer caller's data through the caller's browser. The web app is same-origin, so these
handlers send no CORS headers at all, whatever the request or the server's configuration.
"""

from __future__ import annotations

from typing import Any

from tornado import web

CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
)


class NoCorsMixin(web.RequestHandler):
    """Mix into a `JupyterHandler` subclass, before it: CORS headers are never set."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        for header in CORS_HEADERS:  # e.g. an operator's ServerApp.tornado_settings["headers"]
            self.clear_header(header)

    def set_cors_headers(self) -> None:
        return None

    def options(self, *args: Any, **kwargs: Any) -> None:
        # A preflight learns nothing it could use: no allowed origin, methods or headers.
        self.set_status(204)
        self.finish()
