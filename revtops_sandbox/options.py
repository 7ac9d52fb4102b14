"""Options of ``revtops sandbox serve``, kept apart from the server so that building the CLI's
parser does not import uvicorn and starlette."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from revtops_sandbox.company import DEFAULT_ANCHOR

DEFAULT_PORT = 8765


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``revtops sandbox serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1 = a 50-rep team (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same data (default: 0)")
    add_anchor_argument(parser)
    parser.add_argument(
        "--rate-limits", action="store_true", help="enforce the providers' rate limits"
    )
    parser.add_argument(
        "--malformed-rate", type=float, default=0.0, help="share of records rendered corrupt"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def add_anchor_argument(parser: argparse.ArgumentParser) -> None:
    """``--anchor``: the data's "today". A demo should look like a live company, so the command
    line anchors it to the current day; tests and evals pass a fixed day (the library's default,
    ``DEFAULT_ANCHOR``) to get the same data every run."""
    parser.add_argument(
        "--anchor",
        type=parse_day,
        default=today(),
        help="the data's 'today', YYYY-MM-DD (default: today, UTC; "
        f"tests and evals use {DEFAULT_ANCHOR.date()})",
    )


def today() -> datetime:
    """Midnight UTC of the current day."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def parse_day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc
