"""``revtops ask`` without ANTHROPIC_API_KEY, as a user runs it (a real process) against a store
synced from the sandbox: routed questions print the verified query's table (stdout) and name
the query, its parameters and SQL (stderr); the rest get the closest verified questions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from revtops_kernel.agent.routing import route
from revtops_kernel.agent.routing.store_names import load_route_context
from revtops_kernel.agent.verified import VERIFIED_QUERIES, run_verified
from revtops_kernel.commands.sql import render
from revtops_kernel.store import Database
from revtops_sandbox.evals.sandbox_store import sync_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ORG = "ask-no-key"
REVTOPS = shutil.which("revtops") or str(Path(os.sys.executable).with_name("revtops"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DuckDB store with the sandbox synced in; closed, so the CLI process can open it."""
    url = f"duckdb:///{tmp_path_factory.mktemp('ask-no-key') / 'store.duckdb'}"
    db = Database(url, lock_timeout=10)
    try:
        sync_sandbox(db, org=ORG, scale=0.05, seed=7)
    finally:
        db.dispose()
    return url


@pytest.fixture
def opened(store: str) -> Iterator[Database]:
    db = Database(store, lock_timeout=10)
    yield db
    db.dispose()


def ask(store: str, *args: str, zone: str = "UTC") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVTOPS_DATABASE_URL": store, "REVTOPS_ORG": ORG,
           "REVTOPS_TIMEZONE": zone}  # fmt: skip
    assert "ANTHROPIC_API_KEY" not in env
    return subprocess.run(
        [REVTOPS, "ask", *args], capture_output=True, text=True, env=env, timeout=300
    )


def today(zone: str = "UTC") -> date:
    return datetime.now(ZoneInfo(zone)).date()


def table(store: str, name: str, params: dict[str, Any], *, zone: str = "UTC",
          limit: int | None = None) -> str:  # fmt: skip
    """The verified query's table, computed in this process (the store closed afterwards)."""
    db = Database(store, lock_timeout=10)
    try:
        frame = run_verified(db, name, params, org=ORG, today=today(zone)).frame
    finally:
        db.dispose()
    return render(frame if limit is None else frame.head(limit), "table")


def test_a_routed_question_prints_the_verified_table_and_names_the_query(store: str) -> None:
    answer = ask(store, "which opps have been stuck for more than 45 days?")
    assert answer.returncode == 0, answer.stderr
    assert f"verified: stalled_deals (days=46, as_of={today()})" in answer.stderr
    assert "CAST(46 AS INTEGER)" in answer.stderr  # the SQL, parameters written in
    assert f"note: {VERIFIED_QUERIES['stalled_deals'].note}" in answer.stderr
    expected = table(store, "stalled_deals", {"days": 46})
    assert answer.stdout == expected
    assert re.search(r"\(\d+ rows\)\n$", answer.stdout)  # the sandbox has stalled deals


def test_an_owner_named_with_a_typo_filters_the_verified_query(
    store: str, opened: Database
) -> None:
    context = load_route_context(opened, org=ORG, now=datetime.now(UTC), timezone="UTC")
    firsts = [(o.full_name or "").split()[0] for o in context.owners if o.full_name]
    owner = next(
        o.full_name
        for o in context.owners
        if o.full_name
        and firsts.count(o.full_name.split()[0]) == 1
        and len(o.full_name.split()[-1]) >= 5
    )
    first, last = owner.split()[0], owner.split()[-1]
    question = f"open pipeline by stage for {first.lower()} {last[:-1].lower()}"  # a typo
    routed = route(question, context)
    assert routed.params == {"owner": owner}, routed.reason
    opened.dispose()  # let the CLI process open the store

    answer = ask(store, question)
    assert answer.returncode == 0, answer.stderr
    assert f"verified: pipeline_by_stage (owner={owner})" in answer.stderr
    assert answer.stdout == table(store, "pipeline_by_stage", {"owner": owner})


def test_today_is_the_users_local_date(store: str) -> None:
    # 25 hours apart: the two zones never share a date
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        answer = ask(store, "deals slated to close in the next 30 days", zone=zone)
        assert answer.returncode == 0, answer.stderr
        assert f"start_date={today(zone)}" in answer.stderr
    assert today("Pacific/Kiritimati") != today("Pacific/Pago_Pago")


def test_top_n_shows_the_first_rows(store: str) -> None:
    answer = ask(store, "top 3 reps this quarter")
    assert answer.returncode == 0, answer.stderr
    assert "verified: rep_leaderboard" in answer.stderr
    assert answer.stdout == table(store, "rep_leaderboard", {}, limit=3)
    assert answer.stdout.endswith("(3 rows)\n")


def test_an_unrouted_question_lists_the_closest_verified_questions(store: str) -> None:
    answer = ask(store, "why did we lose our biggest stalled deal?")
    assert answer.returncode == 1
    assert answer.stdout == ""
    assert "no verified query answers this exactly" in answer.stderr
    suggestions = re.findall(r"^  - (.+)  \[(\w+)\]$", answer.stderr, flags=re.MULTILINE)
    assert len(suggestions) == 3
    assert suggestions[0] == ("Which deals are stalled?", "stalled_deals")
    assert "Set ANTHROPIC_API_KEY" in answer.stderr


def test_a_bad_timezone_is_a_configuration_error(store: str) -> None:
    answer = ask(store, "pipeline by stage", "--timezone", "Mars/Olympus_Mons")
    assert answer.returncode == 2
    assert "nknown timezone 'Mars/Olympus_Mons'" in answer.stderr  # either case
