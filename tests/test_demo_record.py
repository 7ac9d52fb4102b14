"""The demo's record: a later `revtops app` on the demo's store says what to run."""

from __future__ import annotations

from revtops_kernel.demo_record import (
    DemoRecord,
    demo_without_sandbox_hint,
    read_demo_record,
    record_path,
    write_demo_record,
)
from revtops_kernel.settings import load_settings

RECORD = DemoRecord(
    database="duckdb:////home/u/.revtops/revtops.duckdb",
    organization="default",
    other_organization="default-salesforce",
    crm="hubspot",
    scale=0.2,
    seed=1,
    anchor="2026-12-06",
    synced_at="2026-12-06T06:00:00+00:00",
)


def test_the_record_round_trips_and_names_the_command() -> None:
    settings = load_settings()
    write_demo_record(settings, RECORD)
    assert read_demo_record(settings) == RECORD
    assert RECORD.command() == "revtops demo --scale 0.2 --seed 1 --crm hubspot"


def test_the_hint_is_for_the_demos_store_only() -> None:
    settings = load_settings()
    assert demo_without_sandbox_hint(settings, RECORD.database) is None  # no demo yet
    write_demo_record(settings, RECORD)
    hint = demo_without_sandbox_hint(settings, RECORD.database)
    assert hint is not None and "revtops demo --scale 0.2 --seed 1 --crm hubspot" in hint
    assert demo_without_sandbox_hint(settings, "postgresql://db/prod") is None
    # Real credentials set since the demo: the app syncs those; no hint.
    real = load_settings(REVTOPS_HUBSPOT_TOKEN="pat-real")
    assert demo_without_sandbox_hint(real, RECORD.database) is None


def test_an_unreadable_record_is_no_record() -> None:
    settings = load_settings()
    record_path(settings).parent.mkdir(parents=True, exist_ok=True)
    record_path(settings).write_text("{not json")
    assert read_demo_record(settings) is None
    record_path(settings).write_text('{"database": "x"}')
    assert read_demo_record(settings) is None
