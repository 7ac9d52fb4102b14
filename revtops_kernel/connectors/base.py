"""What every connector gives the sync engine: pages of raw records, each with a checkpoint.

A connector knows nothing of the database. ``read(stream, checkpoint)`` yields ``Page``s; each
page's ``checkpoint`` is the opaque position to resume from once that page's rows are stored
(the engine saves it in the same transaction as the rows). A connector's checkpoints are JSON
text it alone reads back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from revtops_kernel.connectors.http import CallStats


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    checkpoint: str | None


class Connector(Protocol):
    provider: str

    @property
    def stats(self) -> CallStats: ...

    def streams(self) -> tuple[str, ...]: ...

    def read(self, stream: str, checkpoint: str | None) -> Iterator[Page]: ...


def dump_checkpoint(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def load_checkpoint(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        state = json.loads(text)
    except ValueError:
        return None  # an unreadable checkpoint means: start over with a full read
    return state if isinstance(state, dict) else None
