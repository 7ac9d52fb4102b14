"""An optional summary of the digest written by the assistant (Claude), when a key is set.

The model gets the digest's figures as text and is asked for a few sentences; it is told to
use those figures only. Without ``ANTHROPIC_API_KEY`` nothing is called and the digest goes
out without a summary (``write_narrative`` returns ``None`` and says why in ``skipped``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from revtops_kernel.reports.digest import Digest
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

PROMPT = """You are writing the opening paragraph of a weekly pipeline digest for a sales team.
Using only the figures below (do not run queries, do not make numbers up), write 3 to 4 short
sentences: how the open pipeline stands, what changed against the previous period, and the one
or two things that need attention first. Plain prose, no headings, no tables.

Period: {period} ({timezone})
{figures}"""


@dataclass(frozen=True)
class Narrative:
    text: str | None
    skipped: str | None = None  # why there is no text


def write_narrative(db: Database, settings: Settings, digest: Digest) -> Narrative:
    """Ask the copilot for a short summary of ``digest``; skipped without an API key."""
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return Narrative(None, "no ANTHROPIC_API_KEY configured: the digest has no summary")
    from revtops_kernel.answering import Answerer
    from revtops_kernel.answering.record import collect

    question = PROMPT.format(
        period=digest.period.describe(), timezone=digest.timezone, figures=digest.slack_text()
    )
    answerer = Answerer(db, settings, org=digest.org)
    answer = collect(question, answerer.ask(question, timezone=digest.timezone))
    if answer.error or not answer.text.strip():
        reason = answer.error or "the assistant returned no text"
        log.warning("digest summary skipped: %s", reason)
        return Narrative(None, f"the assistant could not write a summary: {reason}")
    return Narrative(answer.text.strip())
