"""The sign-in page: Supabase's Google OAuth, then the session cookie.

``/login`` links to Supabase's ``/auth/v1/authorize?provider=google``; Supabase sends the browser
back to ``/login`` with the session in the URL fragment (``#access_token=…``), which never
reaches a server. The page's script posts that token to ``/revtops/api/session``; the server
verifies it, sets the HttpOnly cookie and the script moves on to the app (or shows why not:
a personal mailbox, or the waitlist).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado.escape import xhtml_escape

from .context import context_of
from .identity import SESSION_COOKIE

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
  if (!token) return;
  history.replaceState(null, "", location.pathname);
  const status = document.getElementById("status");
  status.textContent = "Signing you in…";
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
  const reply = await fetch({session_url}, {{
    method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "X-XSRFToken": decodeURIComponent(xsrf)}},
    body: JSON.stringify({{access_token: token}}),
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


class SignInHandler(JupyterHandler):
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
        next_url = self.get_argument("next", self.base_url)
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = self.base_url  # never redirect off-site
        self.finish(
            PAGE.format(
                authorize=xhtml_escape(authorize),
                notice=xhtml_escape(notice),
                session_url=_js(self.base_url + "revtops/api/session"),
                next_url=_js(next_url),
            )
        )


class SignOutHandler(JupyterHandler):
    @allow_unauthenticated
    def get(self) -> None:
        self.clear_cookie(SESSION_COOKIE, path=self.base_url)
        self.redirect(self.base_url + "login")
