"""``deal_risks`` answers in 33 cases, saved once and compared row for row after a change.

    python bench/risk_cases.py save --database-url URL --out DIR [--org bench]
    python bench/risk_cases.py compare --database-url URL --out DIR [--org bench]
    ... [--sql-from FILE]   (deal_risks' SQL from FILE's DEAL_RISKS_SQL: a former version)

``save`` runs the cases through the read path the copilot uses (``run_verified``, every row:
max_rows 200,000) and writes each answer as a pickled DataFrame in ``DIR`` with the cases
themselves (``cases.json``: the owner, pipeline and single deals are picked from the store
when saving); ``compare`` runs the saved cases again (on the changed code, or a copy of the
store rebuilt by it) and asserts each answer equal to the saved one (pandas
``assert_frame_equal``, dtypes loose: DuckDB and PostgreSQL type a few columns differently).
So a change to the query or to ``deal_risk_facts`` is checked on any store, at any scale:
defaults; four other as_of; four sets of every threshold; rule filters (one at another as_of);
min_score; a short-window set; an owner; a pipeline at another as_of; ten single deals and
three of them at another as_of with other thresholds; four around the store's last touch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import runpy
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.testing import assert_frame_equal
from sqlalchemy import text

from revtops_kernel.agent.verified import VERIFIED_QUERIES, run_verified
from revtops_kernel.settings import normalize_database_url
from revtops_kernel.store import Database

AS_OF = date(2026, 11, 1)  # the sandbox's anchor
MAX_ROWS = 200_000

THRESHOLD_SETS: list[dict[str, Any]] = [
    {"ghosted_days": 7, "no_meeting_days": 14, "stalled_percentile": 50,
     "stalled_min_won_deals": 1, "single_threaded_days": 14, "max_contacts": 0,
     "pushed_min_moves": 1, "amount_drop_percent": 5},
    {"ghosted_days": 30, "no_meeting_days": 60, "stalled_percentile": 90,
     "stalled_min_won_deals": 20, "single_threaded_days": 60, "max_contacts": 2,
     "pushed_min_moves": 3, "amount_drop_percent": 40},
    {"ghosted_days": 1, "no_meeting_days": 1, "stalled_percentile": 99,
     "stalled_min_won_deals": 3, "single_threaded_days": 1, "max_contacts": 1,
     "pushed_min_moves": 2, "amount_drop_percent": 1},
    {"ghosted_days": 90, "no_meeting_days": 180, "stalled_percentile": 66,
     "stalled_min_won_deals": 10, "single_threaded_days": 120, "max_contacts": 5,
     "pushed_min_moves": 5, "amount_drop_percent": 75},
]  # fmt: skip


def make_cases(db: Database, org: str) -> list[dict[str, Any]]:
    """The cases, with the owner, pipeline and deals taken from the store (``save`` only)."""
    with db.connect() as conn:
        owner = conn.execute(
            text(
                "SELECT o.email FROM deals d JOIN owners o ON o.id = d.owner_id "
                "WHERE d.organization_id = :org AND d.deleted_at IS NULL "
                "AND NOT COALESCE(d.is_closed, false) AND o.email IS NOT NULL "
                "GROUP BY o.email ORDER BY count(*) DESC, o.email LIMIT 1"
            ),
            {"org": org},
        ).scalar_one()
        pipeline = conn.execute(
            text(
                "SELECT p.name FROM deals d JOIN pipelines p ON p.id = d.pipeline_id "
                "WHERE d.organization_id = :org AND d.deleted_at IS NULL "
                "GROUP BY p.name ORDER BY count(*) DESC, p.name LIMIT 1"
            ),
            {"org": org},
        ).scalar_one()
    flagged = run_verified(db, "deal_risks", None, org=org, today=AS_OF, max_rows=MAX_ROWS)
    ids = sorted({str(d) for d in flagged.frame["deal_id"]})
    step = max(1, len(ids) // 10)
    deals = ids[::step][:10]
    cases: list[dict[str, Any]] = [{}]
    cases += [{"as_of": d} for d in ("2026-08-15", "2026-03-03", "2026-11-20", "2027-02-01")]
    cases += [dict(t) for t in THRESHOLD_SETS]
    cases += [
        {"rule": "single_threaded"},
        {"rule": "ghosted", "as_of": "2026-09-30"},
        {"rule": "no_recent_meeting"},
        {"min_score": 30},
        {"as_of": "2026-10-10", "ghosted_days": 3, "single_threaded_days": 5,
         "no_meeting_days": 7},
        {"owner": owner},
        {"pipeline": pipeline, "as_of": "2026-09-01"},
    ]  # fmt: skip
    cases += [{"deal_id": d} for d in deals]
    cases += [{"deal_id": d, "as_of": "2026-07-01", **THRESHOLD_SETS[0]} for d in deals[:3]]
    # Around the store's last touch (the deal rows' summaries split the contact rows there):
    # the day itself, the anchor with meetings on it, a week later, the widest windows.
    cases += [
        {"as_of": "2026-10-31"},
        {"as_of": "2026-11-02", "max_contacts": 3, "single_threaded_days": 7},
        {"as_of": "2026-11-08", "ghosted_days": 3, "max_contacts": 0},
        {"ghosted_days": 365, "single_threaded_days": 365, "max_contacts": 10},
    ]  # fmt: skip
    return cases


def run_case(db: Database, org: str, case: dict[str, Any]) -> pd.DataFrame:
    params = dict(case)
    if "as_of" in params:
        params["as_of"] = date.fromisoformat(params["as_of"])
    result = run_verified(db, "deal_risks", params, org=org, today=AS_OF, max_rows=MAX_ROWS)
    assert not result.truncated, case
    frame = result.frame.copy()
    frame["deal_id"] = frame["deal_id"].astype(str)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("save", "compare"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--org", default="bench")
    parser.add_argument("--sql-from", type=Path, help="a file whose DEAL_RISKS_SQL to run")
    args = parser.parse_args(argv)
    if args.sql_from:  # e.g. `git show REV:revtops_kernel/agent/verified_risk.py > FILE`
        sql = runpy.run_path(str(args.sql_from))["DEAL_RISKS_SQL"]
        VERIFIED_QUERIES["deal_risks"] = dataclasses.replace(
            VERIFIED_QUERIES["deal_risks"], sql=sql
        )
    db = Database(normalize_database_url(args.database_url))
    args.out.mkdir(parents=True, exist_ok=True)
    listed = args.out / "cases.json"
    if args.mode == "save":
        cases = make_cases(db, args.org)
        listed.write_text(json.dumps(cases, indent=1))
    else:
        cases = json.loads(listed.read_text())
    failed = 0
    for number, case in enumerate(cases):
        started = time.perf_counter()
        frame = run_case(db, args.org, case)
        path = args.out / f"case{number:02d}.pkl"
        if args.mode == "save":
            frame.to_pickle(path)
            verdict = "saved"
        else:
            try:
                assert_frame_equal(frame, pd.read_pickle(path), check_dtype=False)
                verdict = "equal"
            except AssertionError as exc:
                failed += 1
                verdict = f"DIFFERENT: {str(exc)[:300]}"
        print(f"case {number:2d} {len(frame):>7,} rows {time.perf_counter() - started:6.2f} s "
              f"{verdict}  {json.dumps(case)}", flush=True)  # fmt: skip
    db.dispose()
    print(f"{len(cases)} cases, {failed} different")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
