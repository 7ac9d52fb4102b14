"""What a Messages API call costs, from its usage (USD), by a dated price table.

Prices per million tokens, from Anthropic's pricing page; each entry carries the date it took
effect (the date it was checked, for the first entry of a model), so a call is priced by the
entry in force on its day and the ledger records which one. A 5-minute cache write costs 1.25x
the input price, a cache read 0.1x. Model ids match by prefix, so dated ids
(``claude-opus-4-5-20251101``) price like their alias. An unknown model has no price (None),
rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

MILLION = Decimal(1_000_000)
CACHE_WRITE_FACTOR = Decimal("1.25")  # 5-minute TTL, the default (ephemeral)
CACHE_READ_FACTOR = Decimal("0.1")
CHECKED = date(2026, 11, 1)  # when the prices below were last checked
CENT_FRACTION = Decimal("0.000001")


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    effective: date = CHECKED  # the first day this price applies


# Longest prefixes first: "claude-opus-4-1" must not match "claude-opus-4". A price change is
# a new entry with its date next to the old one (the old one keeps pricing older calls).
PRICES: tuple[tuple[str, ModelPrice], ...] = (
    ("claude-opus-4-5", ModelPrice(Decimal(5), Decimal(25))),
    ("claude-opus-4-6", ModelPrice(Decimal(5), Decimal(25))),
    ("claude-opus-4-1", ModelPrice(Decimal(15), Decimal(75))),
    ("claude-opus-4", ModelPrice(Decimal(15), Decimal(75))),
    ("claude-sonnet-4-5", ModelPrice(Decimal(3), Decimal(15))),
    ("claude-sonnet-4", ModelPrice(Decimal(3), Decimal(15))),
    ("claude-haiku-4-5", ModelPrice(Decimal(1), Decimal(5))),
    ("claude-3-5-haiku", ModelPrice(Decimal("0.8"), Decimal(4))),
)


def price_of(model: str, on: date | None = None) -> ModelPrice | None:
    """The price in force for ``model`` on ``on`` (default: the latest entry)."""
    prefix = next((p for p, _ in PRICES if model == p or model.startswith(p + "-")), None)
    if prefix is None:
        return None
    entries = sorted((price for p, price in PRICES if p == prefix), key=lambda e: e.effective)
    if on is None:
        return entries[-1]
    in_force = [e for e in entries if e.effective <= on]
    return in_force[-1] if in_force else entries[0]  # before the table began: its first price


def cost_of(
    price: ModelPrice,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
) -> Decimal:
    cost = (
        Decimal(input_tokens) * price.input_per_mtok
        + Decimal(cache_creation_tokens) * price.input_per_mtok * CACHE_WRITE_FACTOR
        + Decimal(cache_read_tokens) * price.input_per_mtok * CACHE_READ_FACTOR
        + Decimal(output_tokens) * price.output_per_mtok
    ) / MILLION
    return cost.quantize(CENT_FRACTION)


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
    on: date | None = None,
) -> Decimal | None:
    """Cost of one call; ``input_tokens`` excludes cached tokens, as the API reports it."""
    price = price_of(model, on)
    if price is None:
        return None
    return cost_of(
        price,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_creation_tokens=cache_creation_tokens,
    )
