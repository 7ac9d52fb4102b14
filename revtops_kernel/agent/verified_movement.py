"""Verified queries of pipeline movement: waterfall between two dates, funnel and velocity,
forecast against quota."""

from __future__ import annotations

from revtops_kernel.agent.verified_base import VerifiedQuery

MOVEMENT_QUERIES: tuple[VerifiedQuery, ...] = ()
