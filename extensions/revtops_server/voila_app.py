"""The web app: Voila serving ``notebooks/app.ipynb`` behind Supabase sign-in, with the REST API.

Deployed as Voila's own server (not as an extension inside a Jupyter Server) because that is
the mode in which Voila restricts kernel websockets to widget messages (``comm_*`` and
``kernel_info``): the browser can drive widgets but can never run code in a kernel. It also
preheats kernels so a visitor does not wait for a cold start.

Identity reaches a kernel only through `revtops_kernel.app_identity`: the page handler signs
the verified user with a per-process secret that kernels inherit through their environment,
and passes it as a header-environment variable that it sets itself.

Each kernel belongs to whom it was handed: the page handler binds the kernel it gives a visitor
(a preheated one leaving the pool, or one started for the request) to that user and their
organization (`kernel_binding`), and every kernel route asks that binding (`kernel_routes`,
`RevtopsAuthorizer`) before letting anyone near it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets.config import Config
from voila.app import Voila
from voila.paths import collect_static_paths
from voila.tornado.handler import TornadoVoilaHandler

from revtops_kernel import app_identity
from revtops_kernel.notebooks import stock_notebook
from revtops_kernel.settings import load_settings

from .context import SETTINGS_KEY, Context, context_of
from .identity import RevtopsAuthorizer, RevtopsUser, SupabaseIdentityProvider
from .kernel_binding import LOCAL_OWNER, KernelBindings, KernelOwner, bindings_of
from .kernel_binding import SETTINGS_KEY as BINDINGS_KEY
from .kernel_routes import guard_kernel_routes
from .no_cors import NoCorsMixin
from .page_preload import load_preloads
from .pool_refill import RefillGate
from .routes import routes

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The page's light front end (frontend/, bundled into static/app.js and app.css), served at
# /revtops/static/. REVTOPS_APP_FRONTEND=voila gives the page Voila's own front end back.
STATIC = Path(__file__).resolve().parent / "static"
STATIC_ROUTE = "revtops/static/"
FRONTEND_ENV = "REVTOPS_APP_FRONTEND"
FRONTENDS = ("light", "voila")
REFILLS_KEY = "revtops_pool_refills"  # the app's RefillGate in the tornado settings
NOTEBOOK = stock_notebook("app")  # the package's copy when installed, else the checkout's

# The only lab extensions the app's page loads: the widget managers (JupyterLab's, for the
# widgets' views, and Voila's own for ipywidgets 8, which Voila would inject but an allowlist
# must name) and anywidget (the chat). Every other extension installed in the environment stays
# off the page: plotly's (a 4.8 MB script every first render parsed, although the app draws its
# charts with plotly.js from the kernel: ui/chart_widget, the chat), jupyterlab_pygments (code
# highlighting: the page shows no code cells) and whatever else gets installed later.
EXTENSION_ALLOWLIST = (
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "anywidget",
)

REFUSED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Revtops Workbench</title><style>body{{font:16px/1.5 system-ui,sans-serif;display:grid;
place-items:center;min-height:100vh;margin:0;background:#f6f7f9}}main{{background:#fff;
padding:2rem 3rem;border-radius:12px;max-width:30rem}}</style></head><body><main>
<h1>{title}</h1><p>{message}</p><p><a href="{logout}">Sign out</a></p></main></body></html>"""


def front_end() -> str:
    """Which front end the page loads: ``light`` (the default) or ``voila``."""
    chosen = os.environ.get(FRONTEND_ENV, "").strip().lower() or "light"
    if chosen not in FRONTENDS:
        raise ValueError(f"{FRONTEND_ENV} must be one of {', '.join(FRONTENDS)}, not {chosen!r}")
    return chosen


def asset_urls() -> dict[str, str]:
    """The light front end's module and stylesheet, relative to the base URL, each with its
    content's hash as version (so a browser caches them until they change)."""
    urls = {}
    for kind, name in (("js", "app.js"), ("css", "app.css")):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16]
        urls[kind] = f"{STATIC_ROUTE}{name}?v={digest}"
    return urls


def page_settings() -> dict[str, Any]:
    """The page's share of the app's ``VoilaConfiguration``: which front end it loads (its
    template reads ``revtops_frontend``), which lab extensions Voila's front end loads and the
    scripts the template preloads for it (`page_preload`). bench/app.py gives its floor page
    the same settings, so the two are compared on the same front end."""
    static = [Path(p) for p in collect_static_paths(["voila", "nbconvert"], "lab")]
    return {
        "extension_allowlist": list(EXTENSION_ALLOWLIST),
        "resources": {
            "revtops_preload": load_preloads(static),
            "revtops_frontend": front_end(),
            "revtops_assets": asset_urls(),
        },
    }


class HandingOverKernelManager:
    """The kernel manager as one page request sees it: the kernel it gets is bound to its user.

    Voila's page handler obtains its kernel in exactly two calls, `get_rendered_notebook` (a
    preheated kernel leaves the pool) and `start_kernel` (the pool is empty); both bind the
    kernel before its id can reach the page. Everything else is the real manager's.
    """

    def __init__(
        self,
        manager: Any,
        bindings: KernelBindings,
        owner: KernelOwner | None,
        refills: RefillGate | None = None,
    ) -> None:
        self._manager = manager
        self._bindings = bindings
        self._owner = owner
        self._refills = refills

    async def get_rendered_notebook(self, *args: Any, **kwargs: Any) -> Any:
        if self._refills is not None:  # the refill this visit triggers waits for its page
            self._refills.visitor_arrived()
        render_task, rendered_cache, kernel_id = await self._manager.get_rendered_notebook(
            *args, **kwargs
        )
        self._bind(kernel_id)
        return render_task, rendered_cache, kernel_id

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id = str(await ensure_async(self._manager.start_kernel(*args, **kwargs)))
        self._bind(kernel_id)
        return kernel_id

    def _bind(self, kernel_id: str) -> None:
        if self._owner is None:  # prepare() found nobody to hand a kernel to: fail closed
            raise web.HTTPError(403, "no signed-in user to hand this kernel to")
        running = set(self._manager.list_kernel_ids())
        self._bindings.bind(kernel_id, self._owner, running=running)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def at_kernel_limit(bindings: KernelBindings, running: set[str], limit: int) -> bool:
    """True when ``limit`` users' kernels are open already (the preheated pool not counted)."""
    return bindings.count_bound(running) >= limit


class RevtopsVoilaHandler(TornadoVoilaHandler):
    """Voila's page handler, admitting only admitted members and signing their identity."""

    _kernel_owner: KernelOwner | None = None

    @property
    def kernel_manager(self) -> Any:
        bindings = bindings_of(self.settings)
        if bindings is None:
            raise web.HTTPError(500, "the kernel binding registry is missing")
        return HandingOverKernelManager(
            self.settings["kernel_manager"],
            bindings,
            self._kernel_owner,
            self.settings.get(REFILLS_KEY),
        )

    async def prepare(self) -> None:
        await super().prepare()
        # Whatever the client sent under this name is dropped before Voila copies headers.
        self.request.headers.pop(app_identity.HEADER, None)
        user = self.current_user
        if user is None:
            return  # not signed in: Voila's @authenticated sends them to /login
        if not isinstance(user, RevtopsUser):
            # Local mode (no Supabase): whoever holds the server's token is its owner.
            self._kernel_owner = LOCAL_OWNER
            if self._refuse_at_kernel_limit():
                return
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
        self._kernel_owner = RevtopsAuthorizer.kernel_owner(user)
        if self._refuse_at_kernel_limit():
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

    def _refuse_at_kernel_limit(self) -> bool:
        """A page holds a kernel for as long as it is open; past the limit the visitor gets a
        page saying so (503, with Retry-After) instead of a server that swaps itself to death."""
        bindings = bindings_of(self.settings)
        limit = context_of(self.settings).settings.max_kernels
        running = set(self.settings["kernel_manager"].list_kernel_ids())
        if bindings is None or not at_kernel_limit(bindings, running, limit):
            return False
        self.set_status(503)
        self.set_header("Retry-After", "120")
        self.finish(
            REFUSED_PAGE.format(
                title="Revtops is at capacity",
                message=(
                    f"All {limit} sessions of this server are in use. Try again in a few "
                    "minutes: idle sessions close by themselves. (Admins: REVTOPS_MAX_KERNELS "
                    "and REVTOPS_KERNEL_IDLE_TIMEOUT set the limit and the idle time.)"
                ),
                logout=self.base_url + "logout",
            )
        )
        return True

    def _local_owner(self) -> app_identity.AppIdentity:
        org = context_of(self.settings).settings.org
        return app_identity.identity_for(
            organization_id=org, user_id=None, email="", name="Local analyst", role="admin"
        )

    def _hand_over(self, identity: app_identity.AppIdentity) -> None:
        secret = os.environ[app_identity.SECRET_ENV]
        self.request.headers[app_identity.HEADER] = app_identity.sign(identity, secret)
        # Sets the _xsrf cookie (tornado does when the token is first read): the page's
        # shutdown-on-leave beacon posts it, and without the cookie Voila's shutdown handler
        # refused the beacon (403), leaving the kernel to the idle culler.
        _ = self.xsrf_token


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
                **page_settings(),
            },
            # permessage-deflate on the kernel websocket: every widget message carries ~550
            # bytes of Jupyter headers; compressed, a streamed answer costs 0.8x its text on the
            # wire instead of 6.9x (bench/chat_stream.py --browser).
            "Voila": {"tornado_settings": {"websocket_compression_options": {}}},
            # The pool refills when the visitor's page has started (`pool_refill`), not 1 s
            # after the page was served, which is when its front end starts.
            "VoilaKernelManager": {"fill_delay": 0.0},
        }
        settings = load_settings()
        if settings.kernel_idle_timeout > 0:
            # Jupyter's culler (Voila keeps it off its preheated pool): a kernel with no
            # message for this long and no page connected is shut down, its memory returned.
            defaults["MappingKernelManager"] = {
                "cull_idle_timeout": int(settings.kernel_idle_timeout),
                "cull_interval": max(1, min(300, int(settings.kernel_idle_timeout) // 2)),
                "cull_connected": False,
            }
        if settings.supabase_url is not None:
            self.identity_provider_class = SupabaseIdentityProvider
        else:
            # Local mode: Jupyter's token, printed in the URL, admits the machine's owner.
            defaults["Voila"]["auto_token"] = True
        self.update_config(Config(defaults))
        args = list(sys.argv[1:] if argv is None else argv)
        if not any(arg.endswith(".ipynb") for arg in args):
            args.append(str(NOTEBOOK))
        super().initialize(args)
        config = self.voila_configuration
        headers = [h for h in config.http_header_envs if h.lower() != app_identity.HEADER.lower()]
        config.http_header_envs = [*headers, app_identity.HEADER]

    def setup_template_dirs(self) -> None:
        """Voila's lab template, with our page template found first (it drops the template's
        links to a CDN: see templates/index.html.j2)."""
        super().setup_template_dirs()
        found: list[str] = list(getattr(self, "template_paths", []))  # set by Voila, untyped
        self.template_paths = [str(TEMPLATES), *found]

    def init_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = super().init_settings()
        settings[SETTINGS_KEY] = Context.create()
        settings[BINDINGS_KEY] = KernelBindings()
        if self.voila_configuration.preheat_kernel:
            refills = settings[REFILLS_KEY] = RefillGate()
            refills.install(self.kernel_manager)
        self.authorizer.allow_kernels = True
        return settings

    def init_handlers(self) -> list[Any]:
        api: list[Any] = [
            (url_path_join(self.server_url, path), handler) for path, handler in routes()
        ]
        # the light front end's module, stylesheet and fonts (public: the page's code)
        static = url_path_join(self.server_url, STATIC_ROUTE, "(.*)")
        api.append((static, web.StaticFileHandler, {"path": str(STATIC)}))
        handlers = []
        for route in guard_kernel_routes(super().init_handlers()):
            if len(route) > 1 and route[1] is TornadoVoilaHandler:
                route = (route[0], RevtopsVoilaHandler, *route[2:])
            handlers.append(_without_cors(route))
        return api + handlers  # the notebook's catch-all route stays last


def _without_cors(route: Any) -> Any:
    """The same route, its handler never sending CORS headers (see `no_cors`).

    Jupyter's handlers echo any ``Origin`` to bearer-authenticated callers; Voila's page, kernel
    and static routes inherit that. The app is same-origin, so none of its routes needs it.
    """
    if len(route) < 2 or not isinstance(route[1], type):
        return route
    handler = route[1]
    if not issubclass(handler, JupyterHandler) or issubclass(handler, NoCorsMixin):
        return route
    guarded = type(handler.__name__, (NoCorsMixin, handler), {"__module__": handler.__module__})
    return (route[0], guarded, *route[2:])


main = launch_new_instance = RevtopsVoila.launch_instance
