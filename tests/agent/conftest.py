"""Fixtures of the copilot tests (defined in copilot_fixtures.py, which tests also import)."""

from copilot_fixtures import api, duck, scripted

__all__ = ["api", "duck", "scripted"]
