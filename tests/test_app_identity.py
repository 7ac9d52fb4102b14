"""The signed identity envelope a web-app kernel trusts."""

from __future__ import annotations

import time

import pytest

from revtops_kernel import app_identity
from revtops_kernel.app_identity import IdentityError, identity_for, sign, verify

SECRET = app_identity.new_secret()


def sample() -> app_identity.AppIdentity:
    return identity_for(
        organization_id="acme-com", user_id=None, email="ana@acme.com", name="Ana", role="member"
    )


def test_round_trip() -> None:
    identity = sample()
    assert verify(sign(identity, SECRET), SECRET) == identity


def test_tampered_payload_or_other_secret_is_refused() -> None:
    envelope = sign(sample(), SECRET)
    _payload, mac = envelope.split(".")
    other = sign(
        identity_for(
            organization_id="globex-com", user_id=None, email="x@globex.com", name="", role=""
        ),
        SECRET,
    )
    with pytest.raises(IdentityError, match="signature"):
        verify(f"{other.split('.')[0]}.{mac}", SECRET)
    with pytest.raises(IdentityError, match="signature"):
        verify(envelope, app_identity.new_secret())
    for junk in ("", ".", "abc", "abc.", ".abc"):
        with pytest.raises(IdentityError):
            verify(junk, SECRET)


def test_expired_envelope_is_refused() -> None:
    envelope = sign(sample(), SECRET)
    with pytest.raises(IdentityError, match="expired"):
        verify(envelope, SECRET, now=time.time() + app_identity.LIFETIME_SECONDS + 5)


def test_kernel_identity_needs_the_server_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(app_identity.SECRET_ENV, raising=False)
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    with pytest.raises(IdentityError, match="not started by the Revtops app"):
        app_identity.kernel_identity()
    monkeypatch.setenv(app_identity.SECRET_ENV, SECRET)
    with pytest.raises(IdentityError, match="sign in again"):
        app_identity.kernel_identity()
    monkeypatch.setenv(app_identity.HEADER_ENV, sign(sample(), SECRET))
    assert app_identity.kernel_identity().organization_id == "acme-com"
