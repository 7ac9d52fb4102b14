"""The sign-in page: Supabase's Google OAuth, then the session cookie.

``/login`` links to Supabase's ``/auth/v1/authorize?provider=google``; Supabase sends the browser
back to ``/login`` with the session in the URL fragment (``#access_token=…``), which never
reaches a server. The page's script posts that token (and the refresh token, so the server can
renew the session, see `sessions`) to ``/revtops/api/session``; the server verifies it, sets the
HttpOnly cookies and the script moves on to ``next`` (or shows why not: a personal mailbox, an
unverified email, or the waitlist). ``next`` is only ever a path of this server (`safe_next`).
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlencode, urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado.escape import xhtml_escape

from .context import context_of
from .no_cors import NoCorsMixin
from .sessions import clear_session_cookies

NEXT_MAX_LENGTH = 2_000
_DECODE_ROUNDS = 3  # percent-encoding layers looked through; more is refused outright

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Revtops Workbench</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; background: #f6f7f9; color: #1d2430;
        display: grid; place-items: center; min-height: 100vh; margin: 0; }}
 main {{ background: #fff; padding: 2.5rem 3rem; border-radius: 12px; max-width: 26rem;
        box-shadow: 0 2px 12px rgba(0,0,0,.08); text-align: center; }}
 a.button {{ display: inline-block; margin-top: 1rem; padding: .7rem 1.4rem; border-radius: 8px;
        background: #1f6feb; color: #fff; text-decoration: none; font-weight: 600; }}
 #status {{ margin-top: 1rem; color: #8a2a0b; min-height: 1.5em; }}
</style></head>
<body><main>
<h1>Revtops Workbench</h1>
<p>Your revenue copilot. Sign in with your work Google account.</p>
<a class="button" id="google" href="{authorize}">Continue with Google</a>
<p id="status" role="status">{notice}</p>
</main>
<script>
(async () => {{
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("access_token");
  const refresh = params.get("refresh_token") || undefined;
  if (!token) return;
  history.replaceState(null, "", location.pathname);
  const status = document.getElementById("status");
  status.textContent = "Signing you in…";
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
  const reply = await fetch({session_url}, {{
    method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "X-XSRFToken": decodeURIComponent(xsrf)}},
    body: JSON.stringify({{access_token: token, refresh_token: refresh}}),
  }});
  const me = await reply.json().catch(() => ({{}}));
  if (reply.ok && me.status === "admitted") {{ location.assign({next_url}); return; }}
  status.textContent = (me.message || (me.error && me.error.message) || "Sign-in failed.");
}})();
</script>
</body></html>
"""


def _js(value: str) -> str:
    """A JSON string literal that is also safe inside <script> (no "</script>" breakout)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def safe_next(raw: str | None, base_url: str) -> str:
    """``raw`` when it is a path under ``base_url`` on this server, else ``base_url``.

    Browsers read ``\\`` as ``/`` and drop tabs and newlines, so ``/\\evil.example`` or
    ``/\\t/evil.example`` would leave the site; each percent-decoded layer is checked as well
    (``/%5Cevil.example``, ``/%2F%2Fevil``), and anything odd falls back to the app.
    """
    if not raw or len(raw) > NEXT_MAX_LENGTH:
        return base_url
    candidate = raw
    for _ in range(_DECODE_ROUNDS):
        if not _same_origin_path(candidate, base_url):
            return base_url
        decoded = unquote(candidate)
        if decoded == candidate:
            return raw
        candidate = decoded
    return base_url


def _same_origin_path(path: str, base_url: str) -> bool:
    if not path.startswith(base_url) or not path.startswith("/") or path.startswith("//"):
        return False
    if "\\" in path or any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in path):
        return False
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc


class SignInHandler(NoCorsMixin, JupyterHandler):
    @allow_unauthenticated
    def get(self) -> None:
        settings = context_of(self.settings).settings
        self.xsrf_token  # noqa: B018  (sets the _xsrf cookie the page's POST echoes)
        here = f"{self.request.protocol}://{self.request.host}{self.base_url}login"
        notice = ""
        if settings.supabase_url is None:
            authorize = "#"
            notice = "Sign-in is not configured on this server (SUPABASE_URL is unset)."
        else:
            query = urlencode({"provider": "google", "redirect_to": here})
            authorize = f"{str(settings.supabase_url).rstrip('/')}/auth/v1/authorize?{query}"
        next_url = safe_next(self.get_argument("next", None, strip=False), self.base_url)
        self.finish(
            PAGE.format(
                authorize=xhtml_escape(authorize),
                notice=xhtml_escape(notice),
                session_url=_js(self.base_url + "revtops/api/session"),
                next_url=_js(next_url),
            )
        )


class SignOutHandler(NoCorsMixin, JupyterHandler):
    @allow_unauthenticated
    def get(self) -> None:
        clear_session_cookies(self)
        self.redirect(self.base_url + "login")
