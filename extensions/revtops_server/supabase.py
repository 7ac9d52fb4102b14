"""Verify Supabase access tokens: the only proof of identity the server accepts.

Supabase signs a session's access token with the project's JWT secret (HS256, older projects)
or with an asymmetric key published at ``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``
(RS256/ES256). Either way the token must carry ``exp``, ``sub``, ``aud == "authenticated"`` and
the project's issuer ``{SUPABASE_URL}/auth/v1``. Anything else, including ``alg: none`` and an
HS256 token on a project without a secret, is refused.

``email_verified``: Supabase copies the identity provider's claim into ``user_metadata``
(Google's is always true); a top-level claim is honoured too. The address counts as verified
unless one of them is present and not ``true``: Supabase issues no session to an unconfirmed
email sign-up when "Confirm email" is on, so a missing claim is not a reason to refuse.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

AUDIENCE = "authenticated"
ASYMMETRIC = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class TokenRejected(Exception):
    """The token is not a valid session of this project; the message says why (no token in it)."""


@dataclass(frozen=True)
class Claims:
    subject: str
    email: str
    name: str | None
    expires_at: int
    raw: dict[str, Any]
    email_verified: bool = True


class SupabaseVerifier:
    def __init__(self, *, supabase_url: str, jwt_secret: str | None = None) -> None:
        self.issuer = supabase_url.rstrip("/") + "/auth/v1"
        self._secret = jwt_secret
        self._jwks = jwt.PyJWKClient(
            self.issuer + "/.well-known/jwks.json", cache_keys=True, lifespan=600, timeout=5
        )

    def verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256":
            if not self._secret:
                raise TokenRejected("HS256 token but SUPABASE_JWT_SECRET is not configured")
            key = self._secret
        elif algorithm in ASYMMETRIC:
            try:
                key = self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWTError as exc:
                raise TokenRejected(f"no signing key for this token: {exc}") from None
        else:
            raise TokenRejected(f"token algorithm {algorithm!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"invalid token: {exc}") from None
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise TokenRejected("the token carries no email")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or _CONTROL.search(subject):
            raise TokenRejected("the token's subject is not a user id")
        metadata = claims.get("user_metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        name = metadata.get("full_name") or metadata.get("name")
        return Claims(
            subject[:255],
            email,
            _display_name(name),
            int(claims["exp"]),
            claims,
            email_verified=_verified(claims.get("email_verified"))
            and _verified(metadata.get("email_verified")),
        )


def _verified(claim: Any) -> bool:
    return claim is None or claim is True


def _display_name(value: Any) -> str | None:
    """A name from the provider's profile, as plain text (it is stored and shown)."""
    if not isinstance(value, str):
        return None
    cleaned = " ".join(_CONTROL.sub(" ", value).split())[:200]
    return cleaned or None


def mint_token(
    *,
    secret: str,
    supabase_url: str,
    subject: str,
    email: str,
    name: str | None = None,
    lifetime: int = 3600,
    **overrides: Any,
) -> str:
    """An HS256 session token as Supabase would issue it: for tests, the demo and the bench."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "email": email,
        "aud": AUDIENCE,
        "iss": supabase_url.rstrip("/") + "/auth/v1",
        "iat": now,
        "exp": now + lifetime,
        "role": "authenticated",
        "user_metadata": {"full_name": name} if name else {},
    }
    claims.update(overrides)
    claims = {key: value for key, value in claims.items() if value is not None}
    return jwt.encode(claims, secret, algorithm="HS256")
