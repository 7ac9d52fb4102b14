"""Verified queries of deal risk: named rules, each with its reason and evidence, and a
combined score."""

from __future__ import annotations

from revtops_kernel.agent.verified_base import VerifiedQuery

RISK_QUERIES: tuple[VerifiedQuery, ...] = ()
