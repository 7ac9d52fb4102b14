"""Small HTTP helpers shared by the provider routes (no python-multipart needed)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (OAuth token requests) as a dict."""
    raw = await request.body()
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
