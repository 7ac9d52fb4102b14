"""The web app: Voila serving ``notebooks/app.ipynb`` behind Supabase sign-in, with the REST API.

Deployed as Voila's own server (not as an extension inside a Jupyter Server) because that is
the mode in which Voila restricts kernel websockets to widget messages (``comm_*`` and
``kernel_info``): the browser can drive widgets but can never run code in a kernel. It also
preheats kernels so a visitor does not wait for a cold start.

Identity reaches a kernel only through `revtops_kernel.app_identity`: the page handler signs
the verified user with a per-process secret that kernels inherit through their environment,
and passes it as a header-environment variable that it sets itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join
from tornado import web
from traitlets.config import Config
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

from revtops_kernel import app_identity
from revtops_kernel.settings import load_settings

from .context import SETTINGS_KEY, Context, context_of
from .handlers import routes
from .identity import RevtopsAuthorizer, RevtopsUser, SupabaseIdentityProvider

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "app.ipynb"

REFUSED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Revtops Workbench</title><style>body{{font:16px/1.5 system-ui,sans-serif;display:grid;
place-items:center;min-height:100vh;margin:0;background:#f6f7f9}}main{{background:#fff;
padding:2rem 3rem;border-radius:12px;max-width:30rem}}</style></head><body><main>
<h1>{title}</h1><p>{message}</p><p><a href="{logout}">Sign out</a></p></main></body></html>"""


class RevtopsVoilaHandler(TornadoVoilaHandler):
    """Voila's page handler, admitting only admitted members and signing their identity."""

    async def prepare(self) -> None:
        await super().prepare()
        # Whatever the client sent under this name is dropped before Voila copies headers.
        self.request.headers.pop(app_identity.HEADER, None)
        user = self.current_user
        if user is None:
            return  # not signed in: Voila's @authenticated sends them to /login
        if not isinstance(user, RevtopsUser):
            # Local mode (no Supabase): whoever holds the server's token is its owner.
            self._hand_over(self._local_owner())
            return
        if not user.admitted or user.organization_id is None:
            title = "You're on the waitlist" if user.status == "waitlisted" else "Work email only"
            self.set_status(403)
            self.finish(
                REFUSED_PAGE.format(
                    title=web.escape.xhtml_escape(title),
                    message=web.escape.xhtml_escape(user.message),
                    logout=self.base_url + "logout",
                )
            )
            return
        self._hand_over(
            app_identity.identity_for(
                organization_id=user.organization_id,
                user_id=str(user.member_id) if user.member_id else None,
                email=user.email,
                name=user.display_name,
                role=user.role,
            )
        )

    def _local_owner(self) -> app_identity.AppIdentity:
        org = context_of(self.settings).settings.org
        return app_identity.identity_for(
            organization_id=org, user_id=None, email="", name="Local analyst", role="admin"
        )

    def _hand_over(self, identity: app_identity.AppIdentity) -> None:
        secret = os.environ[app_identity.SECRET_ENV]
        self.request.headers[app_identity.HEADER] = app_identity.sign(identity, secret)


class RevtopsVoila(Voila):
    """``revtops app``: Voila with sign-in, the REST API and preheated kernels."""

    name = "revtops-app"

    def initialize(self, argv: Any = None) -> None:
        # Kernels inherit the server's environment: that is how they get the signing secret.
        os.environ.setdefault(app_identity.SECRET_ENV, app_identity.new_secret())
        self.authorizer_class = RevtopsAuthorizer
        defaults: dict[str, Any] = {
            # Defaults that the command line can still override: warm kernels, no tracebacks.
            "VoilaConfiguration": {
                "preheat_kernel": True,
                "default_pool_size": 2,
                "show_tracebacks": False,
            }
        }
        if load_settings().supabase_url is not None:
            self.identity_provider_class = SupabaseIdentityProvider
        else:
            # Local mode: Jupyter's token, printed in the URL, admits the machine's owner.
            defaults["Voila"] = {"auto_token": True}
        self.update_config(Config(defaults))
        args = list(sys.argv[1:] if argv is None else argv)
        if not any(arg.endswith(".ipynb") for arg in args):
            args.append(str(NOTEBOOK))
        super().initialize(args)
        config = self.voila_configuration
        headers = [h for h in config.http_header_envs if h.lower() != app_identity.HEADER.lower()]
        config.http_header_envs = [*headers, app_identity.HEADER]

    def init_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = super().init_settings()
        settings[SETTINGS_KEY] = Context.create()
        self.authorizer.allow_kernels = True
        return settings

    def init_handlers(self) -> list[Any]:
        api = [(url_path_join(self.server_url, path), handler) for path, handler in routes()]
        handlers = []
        for route in super().init_handlers():
            if len(route) > 1 and route[1] is TornadoVoilaHandler:
                route = (route[0], RevtopsVoilaHandler, *route[2:])
            handlers.append(route)
        return api + handlers  # the notebook's catch-all route stays last


main = launch_new_instance = RevtopsVoila.launch_instance
