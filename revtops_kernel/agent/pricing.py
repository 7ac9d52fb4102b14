"""What a Messages API call costs, from its usage (USD).

Prices per million tokens, from Anthropic's pricing page (checked 2026-11): a 5-minute cache
write costs 1.25x the input price, a cache read 0.1x. Model ids match by prefix, so dated ids
(``claude-opus-4-5-20251101``) price like their alias. An unknown model has no price (None),
rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MILLION = Decimal(1_000_000)
CACHE_WRITE_FACTOR = Decimal("1.25")  # 5-minute TTL, the default (ephemeral)
CACHE_READ_FACTOR = Decimal("0.1")


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: Decimal
    output_per_mtok: Decimal


# Longest prefixes first: "claude-opus-4-1" must not match "claude-opus-4".
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


def price_of(model: str) -> ModelPrice | None:
    for prefix, price in PRICES:
        if model == prefix or model.startswith(prefix + "-"):
            return price
    return None


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
) -> Decimal | None:
    """Cost of one call; ``input_tokens`` excludes cached tokens, as the API reports it."""
    price = price_of(model)
    if price is None:
        return None
    cost = (
        Decimal(input_tokens) * price.input_per_mtok
        + Decimal(cache_creation_tokens) * price.input_per_mtok * CACHE_WRITE_FACTOR
        + Decimal(cache_read_tokens) * price.input_per_mtok * CACHE_READ_FACTOR
        + Decimal(output_tokens) * price.output_per_mtok
    ) / MILLION
    return cost.quantize(Decimal("0.000001"))
