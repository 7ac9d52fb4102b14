"""Google APIs' error envelope, shared by the Calendar routes and the gate."""

from __future__ import annotations

import json
from typing import Any

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    410: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error_body(
    code: int, message: str, reason: str, *, domain: str = "global", **where: str
) -> dict[str, Any]:
    """``{"error": {"code", "message", "errors": [{"domain", "reason", "message", ...}],
    "status"}}``; ``where`` adds ``location``/``locationType`` to the inner error."""
    inner: dict[str, Any] = {"domain": domain, "reason": reason, "message": message, **where}
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [inner],
            "status": _STATUS.get(code, "UNKNOWN"),
        }
    }


def error_bytes(code: int, message: str, reason: str, **kwargs: Any) -> bytes:
    return json.dumps(error_body(code, message, reason, **kwargs), separators=(",", ":")).encode()


def auth_error_bytes() -> bytes:
    return error_bytes(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        location="Authorization",
        locationType="header",
    )
