"""``deal_risk_facts`` (store.risk_facts), on both backends: a refresh after changes equals a
rebuild from nothing, writes only the changed deals' rows, and ``revtops db upgrade`` builds
the table for a store that predates it."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import sandbox_settings
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.resolve import ResolveReport
from revtops_kernel.store import Database, risk_facts, upgrade
from revtops_kernel.store.bookkeeping import RunCounts
from revtops_kernel.store.risk_facts import (
    _COLUMNS,
    RETIRED_KINDS,
    STALE,
    TABLE,
    is_stale,
    refresh_after_sync,
    refresh_risk_facts,
)
from revtops_kernel.store.upsert import upsert
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer
from tests.intelligence.risk_dataset import AS_OF, ORG, OTHER_ORG, SYSTEM, at, build

_ROW = ", ".join(f"CAST({c} AS TEXT)" for c in ("organization_id", *_COLUMNS))


def facts(db: Database) -> set[tuple[Any, ...]]:
    """Every row's values (not its id), as text."""
    with db.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {_ROW} FROM {TABLE}"))}


def deals_of(rows: set[tuple[Any, ...]]) -> set[str]:
    index = 1 + _COLUMNS.index("deal_id")
    return {row[index] for row in rows}


def test_a_refresh_writes_only_the_changed_deals_and_equals_a_rebuild(db: Database) -> None:
    ids = build(db)
    before = facts(db)
    kinds = {row[1] for row in before}
    assert kinds == {"touch", "contact", "won_stage", "push", "deal"}
    assert {row[0] for row in before} == {ORG, OTHER_ORG}

    healthy, ghosted = ids["healthy"], ids["ghosted"]
    with db.begin() as conn:
        # A new outbound email on one deal, one of another deal's emails deleted.
        email = {
            "id": record_id(ORG, SYSTEM, "activities", "new-email"),
            "organization_id": ORG,
            "source_system": SYSTEM,
            "source_id": "new-email",
            "activity_type": "email",
            "direction": "outbound",
            "occurred_at": at(1),
            "deal_id": healthy,
            "raw": {},
        }
        upsert(conn, "activities", [email])
        deleted = conn.execute(
            text(
                "UPDATE activities SET deleted_at = :now WHERE deal_id = :deal "
                "AND activity_type = 'email' AND direction = 'outbound'"
            ),
            {"now": at(0), "deal": ghosted},
        ).rowcount
        assert deleted == 2
        report = refresh_risk_facts(conn, ORG)
    after = facts(db)
    changed = before ^ after
    assert changed, "nothing changed"
    assert deals_of(changed) == {str(healthy), str(ghosted)}
    assert report.written == len(changed)
    assert report.derived == len([row for row in after if row[0] == ORG])

    with db.begin() as conn:  # nothing changed since: nothing written
        assert refresh_risk_facts(conn, ORG).written == 0
        conn.execute(text(f"DELETE FROM {TABLE}"))
        rebuilt = (
            refresh_risk_facts(conn, ORG, full=True).inserted
            + refresh_risk_facts(conn, OTHER_ORG, full=True).inserted
        )
    assert facts(db) == after
    assert rebuilt == len(after)


def test_db_upgrade_builds_the_table_for_a_store_that_predates_it(db: Database) -> None:
    build(db)
    expected = facts(db)
    assert expected
    with db.begin() as conn:
        conn.execute(text(f"DROP TABLE {TABLE}"))
    report = upgrade(db)
    assert TABLE in report.created_tables
    assert facts(db) == expected


def test_db_upgrade_rebuilds_the_table_when_a_column_was_added(db: Database) -> None:
    """A version that adds a column (previous_day here) rebuilds the rows on upgrade: they are
    derived again, the new column filled, as a store built from nothing has them."""
    build(db)
    expected = facts(db)
    with db.begin() as conn:
        conn.execute(text(f"ALTER TABLE {TABLE} DROP COLUMN previous_day"))
    report = upgrade(db)
    assert f"{TABLE}.previous_day" in report.added_columns
    assert facts(db) == expected


def test_db_upgrade_turns_won_deal_ranks_into_a_row_per_stage(db: Database) -> None:
    """A store from before migration 2 kept a won_stage row per won deal and stage with its
    rank (``position``, ``days``): the upgrade drops those columns and rebuilds the rows, one
    per stage with its won deals' days sorted, as a store built from nothing has them."""
    build(db)
    expected = facts(db)
    stages = {row[1 + _COLUMNS.index("stage_id")] for row in expected if row[1] == "won_stage"}
    days = [row[1 + _COLUMNS.index("won_days")] for row in expected if row[1] == "won_stage"]
    assert len(stages) == len(days) > 0  # one row per stage, each with its deals' days
    with db.begin() as conn:
        conn.execute(text(f"ALTER TABLE {TABLE} DROP COLUMN won_days"))
        conn.execute(text(f"ALTER TABLE {TABLE} ADD COLUMN position INTEGER"))
        conn.execute(text(f"ALTER TABLE {TABLE} ADD COLUMN days INTEGER"))
        conn.execute(
            text(  # an old per-deal row, which the rebuild must not keep
                f"INSERT INTO {TABLE} (id, organization_id, kind, deal_id, stage_id, position, "
                f"days, fingerprint) VALUES (:id, :org, 'won_stage', :id, :id, 0, 12, 'old')"
            ),
            {"id": record_id(ORG, SYSTEM, "deals", "won-before"), "org": ORG},
        )
        conn.execute(text("DELETE FROM revtops_schema WHERE version = 2"))
    report = upgrade(db)
    assert report.applied_migrations == ["2 deal_risk_facts: a won_stage row per stage"]
    assert f"{TABLE}.won_days" in report.added_columns
    with db.connect() as conn:
        columns = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    f"WHERE table_name = '{TABLE}' AND table_schema = current_schema()"
                )
            ).scalars()
        )
    assert not {"position", "days"} & columns
    assert facts(db) == expected


def test_days_are_whole_utc_days_of_the_windows(db: Database) -> None:
    """A touch late on a day and one early the next are two days' rows: the rules' windows
    end at midnight (``occurred_at < as_of + 1``)."""
    ids = build(db)
    late = at(AS_OF - timedelta(days=1), 23)
    with db.begin() as conn:
        upsert(
            conn,
            "activities",
            [
                {
                    "id": record_id(ORG, SYSTEM, "activities", f"late-{n}"),
                    "organization_id": ORG,
                    "source_system": SYSTEM,
                    "source_id": f"late-{n}",
                    "activity_type": "call",
                    "direction": "outbound",
                    "occurred_at": late + timedelta(hours=2 * n),
                    "deal_id": ids["undirected"],
                    "raw": {},
                }
                for n in range(2)
            ],
        )
        refresh_risk_facts(conn, ORG)
        days = conn.execute(
            text(
                f"SELECT CAST(day AS TEXT), calls_out FROM {TABLE} WHERE kind = 'touch' "
                "AND deal_id = :deal ORDER BY day"
            ),
            {"deal": ids["undirected"]},
        ).all()
    assert [tuple(d) for d in days] == [
        (str(AS_OF - timedelta(days=1)), 1),
        (str(AS_OF), 1),
    ]


def _run(resolution: ResolveReport | None = None, **counts: int) -> SimpleNamespace:
    """What refresh_after_sync reads of a sync's result."""
    return SimpleNamespace(counts=RunCounts(**counts), resolution=resolution)


def _new_email(deal: Any) -> dict[str, Any]:
    return {
        "id": record_id(ORG, SYSTEM, "activities", "skip-email"),
        "organization_id": ORG,
        "source_system": SYSTEM,
        "source_id": "skip-email",
        "activity_type": "email",
        "direction": "outbound",
        "occurred_at": at(1),
        "deal_id": deal,
        "raw": {},
    }


def test_a_run_that_changed_nothing_skips_the_refresh(db: Database) -> None:
    """No row written by the run's batches or clean-up and none rewritten by resolution: the
    refresh reads nothing (derives no row); anything written, or rewritten by resolution, and
    it runs and catches up."""
    ids = build(db)
    before = facts(db)
    with db.begin() as conn:  # written behind the sync's back: a skip must not see it
        upsert(conn, "activities", [_new_email(ids["healthy"])])

    skipped = refresh_after_sync(db, ORG, run=_run(fetched=500))
    assert skipped is not None and skipped.derived == 0 and skipped.written == 0
    assert facts(db) == before

    for days, run in enumerate(
        (
            _run(upserted=1),
            _run(deleted=1),
            _run(ResolveReport(0, (), participants_updated=1)),
            _run(ResolveReport(0, (), meetings_updated=1)),
        ),
        start=2,
    ):
        with db.begin() as conn:  # the email moves a day: the deal's touch rows change
            conn.execute(
                text("UPDATE activities SET occurred_at = :at WHERE id = :id"),
                {"at": at(days), "id": _new_email(ids["healthy"])["id"]},
            )
        report = refresh_after_sync(db, ORG, run=run)
        assert report is not None and report.derived > 0 and report.written > 0, run
        with db.begin() as conn:
            refreshed = facts(db)
            conn.execute(text(f"DELETE FROM {TABLE}"))
            refresh_risk_facts(conn, ORG, full=True)
            refresh_risk_facts(conn, OTHER_ORG, full=True)
        assert facts(db) == refreshed
    assert str(ids["healthy"]) in deals_of(facts(db) - before)


def test_a_failed_refresh_marks_the_rows_stale_until_one_succeeds(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = build(db)

    def fail(conn: Any, org: str) -> Any:
        raise RuntimeError("refresh broke")

    with db.begin() as conn:
        upsert(conn, "activities", [_new_email(ids["healthy"])])
    with monkeypatch.context() as patch:
        patch.setattr(risk_facts, "refresh_risk_facts", fail)
        assert refresh_after_sync(db, ORG, run=_run(upserted=1)) is None
        assert refresh_after_sync(db, ORG, run=_run(upserted=1)) is None  # one mark
    with db.connect() as conn:
        assert is_stale(conn, ORG) and not is_stale(conn, OTHER_ORG)
        marks = conn.execute(
            text(f"SELECT count(*) FROM {TABLE} WHERE kind = :k"), {"k": STALE}
        ).scalar_one()
    assert marks == 1

    # The next run wrote nothing, but the rows are stale: it refreshes, and clears the mark.
    report = refresh_after_sync(db, ORG, run=_run())
    assert report is not None and report.derived > 0 and report.deleted >= 1
    with db.connect() as conn:
        assert not is_stale(conn, ORG)
    expected = facts(db)
    with db.begin() as conn:
        conn.execute(text(f"DELETE FROM {TABLE}"))
        refresh_risk_facts(conn, ORG, full=True)
        refresh_risk_facts(conn, OTHER_ORG, full=True)
    assert facts(db) == expected


def test_the_next_sync_deletes_the_kinds_a_former_version_wrote(db: Database) -> None:
    """Rows of kinds nothing reads any more (a store refreshed by a former version): the next
    sync refreshes even if its run changed nothing, deletes them and writes nothing else; the
    one after skips again."""
    ids = build(db)
    expected = facts(db)
    with db.begin() as conn:
        for n, kind in enumerate(RETIRED_KINDS):
            conn.execute(
                text(
                    f"INSERT INTO {TABLE} (id, organization_id, kind, deal_id, last_meeting, "
                    "fingerprint) VALUES (gen_random_uuid(), :org, :kind, :deal, :at, :f)"
                ),
                {"org": ORG, "kind": kind, "deal": ids["healthy"], "at": at(1), "f": f"old{n}"},
            )
    report = refresh_after_sync(db, ORG, run=_run())
    assert report is not None and (report.deleted, report.inserted) == (len(RETIRED_KINDS), 0)
    assert facts(db) == expected
    skipped = refresh_after_sync(db, ORG, run=_run())
    assert skipped is not None and skipped.derived == 0


def test_the_sync_refreshes_after_a_change_and_skips_a_resync_that_changed_nothing(
    db: Database, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through run_sync: a first sync and one after a change in the provider refresh (and
    equal a rebuild); an immediate re-sync writes nothing and reads nothing of the store for
    the rows."""
    settings = sandbox_settings(sandbox, db, "hubspot", org="risk-sync")
    refreshed: list[str] = []
    real = risk_facts.refresh_risk_facts

    def spy(conn: Any, org: str) -> Any:
        refreshed.append(org)
        return real(conn, org)

    monkeypatch.setattr(risk_facts, "refresh_risk_facts", spy)
    assert run_sync(db, settings, "hubspot").ok
    assert refreshed == ["risk-sync"]
    built = facts(db)
    assert built

    again = run_sync(db, settings, "hubspot")
    assert again.ok, again.error
    assert (again.counts.upserted, again.counts.deleted) == (0, 0)
    assert refreshed == ["risk-sync"]  # skipped
    assert facts(db) == built

    sandbox.mutate(modified_pct=5.0, seed=11, object_types=["deals", "emails"])
    changed = run_sync(db, settings, "hubspot")
    assert changed.ok and changed.counts.upserted > 0
    assert refreshed == ["risk-sync", "risk-sync"]
    after = facts(db)
    with db.begin() as conn:
        conn.execute(text(f"DELETE FROM {TABLE}"))
        real(conn, "risk-sync", full=True)
    assert facts(db) == after
