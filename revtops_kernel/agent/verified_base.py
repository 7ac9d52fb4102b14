"""What every verified query is made of: the ``VerifiedQuery`` record and the SQL fragments the
query modules share (``verified.py``'s core set, ``verified_risk.py``, ``verified_movement.py``).

The conventions the fragments encode are written once, in ``verified.py``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from revtops_kernel.agent.verified_params import Param


@dataclass(frozen=True)
class VerifiedQuery:
    name: str
    title: str
    description: str  # what it answers, in one or two sentences
    params: tuple[Param, ...]
    sql: str
    note: str | None = None  # an approximation the answer should mention
    # How people ask it, in their words: the question router's examples (the first is the one
    # suggested to users). Adding a query adds its phrasings here.
    phrasings: tuple[str, ...] = ()
    # Words that mark this query's subject: a question using them is about this query (the
    # router will not answer it from another one).
    keywords: tuple[str, ...] = ()

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)


# Filters shared by the queries, spelled once.
OPEN = "d.deleted_at IS NULL AND NOT COALESCE(d.is_closed, false)"
OWNER_MATCH = (
    "(args.owner IS NULL OR lower(o.email) = args.owner OR lower(o.full_name) = args.owner)"
)
PIPELINE_MATCH = "(args.pipeline IS NULL OR lower(p.name) = args.pipeline)"
DEAL_JOINS = """
LEFT JOIN pipelines p ON p.id = d.pipeline_id AND p.deleted_at IS NULL
LEFT JOIN deal_stages s ON s.id = d.stage_id AND s.deleted_at IS NULL
LEFT JOIN owners o ON o.id = d.owner_id AND o.deleted_at IS NULL
LEFT JOIN accounts acc ON acc.id = d.account_id AND acc.deleted_at IS NULL"""
DEAL_COLUMNS = """d.name AS deal, acc.name AS account, p.name AS pipeline,
    COALESCE(s.label, d.stage_name) AS stage, o.full_name AS owner, d.amount, d.close_date"""
FILTER_ARGS = "lower(CAST(:owner AS TEXT)) AS owner, lower(CAST(:pipeline AS TEXT)) AS pipeline"
