"""Syncs side by side (revtops_kernel.sync_all): results in order, a failure does not stop the
others, they really overlap, first loads take turns, Ctrl-C stops them and the next sync
resumes, and the store ends as one-at-a-time syncs leave it, on both backends."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import default_sigint, sandbox_env
from sqlalchemy import text
from test_sync_resilience import BUSINESS_TABLES, contents, second_store  # noqa: F401

from revtops_kernel.cli import build_parser, ctrl_c_stops, sync_interrupted
from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.bookkeeping import RunCounts, save_cursor
from revtops_kernel.store.schema import metadata
from revtops_kernel.sync import SyncResult, SyncStopped
from revtops_kernel.sync_all import SyncJob, run_syncs
from revtops_sandbox import SandboxServer

ORG = "sidebyside"
ACTIVITY = ("hubspot", "slack", "google_calendar")


class FakeRunner:
    """Stands in for run_sync: sleeps ``seconds[provider]`` (in slices, looking at ``stop``),
    notes when each ran and in which thread; ``fail`` raises."""

    def __init__(self, seconds: dict[str, float], fail: str | None = None) -> None:
        self.seconds, self.fail = seconds, fail
        self.spans: dict[str, tuple[float, float]] = {}
        self.threads: dict[str, str] = {}
        self.lines: dict[str, int | None] = {}

    def __call__(
        self, db: Database, settings: Settings, provider: str, **kwargs: Any
    ) -> SyncResult:
        started = time.monotonic()
        self.threads[provider] = threading.current_thread().name
        self.lines[provider] = kwargs.get("progress_line")
        stop = kwargs.get("stop")
        try:
            if provider == self.fail:
                raise RuntimeError(f"{provider} broke")
            deadline = started + self.seconds.get(provider, 0.0)
            while time.monotonic() < deadline:
                if stop is not None and stop.is_set():
                    raise SyncStopped
                time.sleep(0.01)
        finally:
            self.spans[provider] = (started, time.monotonic())
        org = kwargs.get("org") or settings.org
        return SyncResult(
            uuid.uuid4(), org, provider, SyncRunStatus.SUCCEEDED, RunCounts(),
            time.monotonic() - started,
        )  # fmt: skip

    def overlap(self, a: str, b: str) -> bool:
        (a0, a1), (b0, b1) = self.spans[a], self.spans[b]
        return a0 < b1 and b0 < a1


def _settings(db: Database) -> Settings:
    return load_settings(
        REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False), REVTOPS_ORG=ORG
    )


def _has_cursors(db: Database, *providers: str) -> None:
    with db.begin() as conn:
        for provider in providers:
            save_cursor(conn, ORG, provider, "stream", "{}")


def test_results_in_order_side_by_side_and_a_failure_does_not_stop_the_others(
    db: Database,
) -> None:
    _has_cursors(db, *ACTIVITY, "salesforce")  # all incremental: each in a thread of its own
    runner = FakeRunner({"hubspot": 0.6, "slack": 0.2, "google_calendar": 0.4}, fail="salesforce")
    ended: list[str] = []
    jobs = [SyncJob(p) for p in ("hubspot", "salesforce", "slack", "google_calendar")]
    started = time.monotonic()
    results = run_syncs(
        db, _settings(db), jobs, runner=runner, on_result=lambda r: ended.append(r.provider)
    )
    wall = time.monotonic() - started
    assert [r.provider for r in results] == ["hubspot", "salesforce", "slack", "google_calendar"]
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].error == "RuntimeError: salesforce broke"
    assert results[1].organization_id == ORG
    assert ended == ["salesforce", "slack", "google_calendar", "hubspot"]  # as each ended
    assert runner.overlap("hubspot", "slack") and runner.overlap("hubspot", "google_calendar")
    assert len(set(runner.threads.values())) == 4
    assert wall < 0.6 + 0.2 + 0.4  # the longest, not the sum (and some slack for the load)


def test_first_loads_take_turns_beside_the_incremental_syncs(db: Database) -> None:
    _has_cursors(db, "slack", "google_calendar")  # hubspot and salesforce: first loads
    runner = FakeRunner({p: 0.3 for p in (*ACTIVITY, "salesforce")})
    jobs = [SyncJob(p) for p in ("hubspot", "slack", "google_calendar", "salesforce")]
    results = run_syncs(db, _settings(db), jobs, runner=runner, progress=True)
    assert [r.provider for r in results] == [j.provider for j in jobs]
    assert not runner.overlap("hubspot", "salesforce")  # one after the other, in order
    assert runner.spans["hubspot"][1] <= runner.spans["salesforce"][0]
    assert runner.threads["hubspot"] == runner.threads["salesforce"]
    assert runner.overlap("hubspot", "slack") and runner.overlap("slack", "google_calendar")
    # One progress line per thread: the first loads share the top one.
    assert runner.lines == {"hubspot": 0, "salesforce": 0, "slack": 1, "google_calendar": 2}
    # A full refresh is a first load too; or all side by side when asked.
    runner = FakeRunner({p: 0.3 for p in ("slack", "google_calendar")})
    jobs = [SyncJob("slack", full_refresh=True), SyncJob("google_calendar", full_refresh=True)]
    run_syncs(db, _settings(db), jobs, runner=runner)
    assert not runner.overlap("slack", "google_calendar")
    run_syncs(db, _settings(db), jobs, runner=runner, first_loads_side_by_side=True)
    assert runner.overlap("slack", "google_calendar")


def test_one_at_a_time_runs_in_the_calling_thread_in_order(db: Database) -> None:
    _has_cursors(db, *ACTIVITY)
    runner = FakeRunner({p: 0.1 for p in ACTIVITY})
    results = run_syncs(db, _settings(db), [SyncJob(p) for p in ACTIVITY], side_by_side=False,
                        runner=runner)  # fmt: skip
    assert [r.provider for r in results] == list(ACTIVITY)
    assert set(runner.threads.values()) == {threading.current_thread().name}
    assert not runner.overlap("hubspot", "slack") and not runner.overlap("slack", "google_calendar")


def test_ctrl_c_stops_the_syncs_side_by_side_within_a_second(db: Database) -> None:
    _has_cursors(db, *ACTIVITY)
    runner = FakeRunner({p: 30.0 for p in ACTIVITY})
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_syncs(db, _settings(db), [SyncJob(p) for p in ACTIVITY], runner=runner)
    assert time.monotonic() - started < 2.0
    assert all(end - start < 2.0 for start, end in runner.spans.values())  # all stopped


@pytest.mark.parametrize("side_by_side", [True, False])
def test_a_stop_set_by_the_callers_ctrl_c_ends_the_syncs_either_way(
    db: Database, side_by_side: bool
) -> None:
    """``revtops sync``'s Ctrl-C handler (``cli.ctrl_c_stops``) sets ``stop`` instead of raising
    wherever Python happens to be: one at a time too, the sync in hand ends at its next page
    and the ones after it never start."""
    _has_cursors(db, *ACTIVITY)
    runner = FakeRunner({p: 30.0 for p in ACTIVITY})
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_syncs(db, _settings(db), [SyncJob(p) for p in ACTIVITY], runner=runner,
                  side_by_side=side_by_side, stop=stop)  # fmt: skip
    assert time.monotonic() - started < 2.0
    assert len(runner.spans) == (len(ACTIVITY) if side_by_side else 1), runner.spans


def test_after_a_stop_a_ctrl_c_leaves_the_syncs_side_by_side_at_once(db: Database) -> None:
    """The caller's handler set ``stop`` on the first Ctrl-C; the second raises in the waiting
    thread, which leaves the syncs (daemon threads) instead of waiting for them again."""
    _has_cursors(db, *ACTIVITY)

    released = threading.Event()  # ends the left threads with the test, not 30 s later

    def deaf(db: Database, settings: Settings, provider: str, **kwargs: Any) -> SyncResult:
        released.wait(30)  # a Retry-After wait: it never looks at stop
        return SyncResult(uuid.uuid4(), ORG, provider, SyncRunStatus.SUCCEEDED, RunCounts(), 0.0)

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    threading.Timer(0.4, _thread.interrupt_main).start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_syncs(db, _settings(db), [SyncJob(p) for p in ACTIVITY], runner=deaf, stop=stop)
        assert time.monotonic() - started < 2.0
    finally:
        released.set()


def test_ctrl_c_sets_the_stop_flag_and_a_second_one_leaves() -> None:
    stop, before = threading.Event(), signal.getsignal(signal.SIGINT)
    with ctrl_c_stops(stop):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # not reached: the handler raises here
    assert signal.getsignal(signal.SIGINT) is before


def test_the_sync_option_to_run_one_at_a_time() -> None:
    parser = build_parser()
    assert parser.parse_args(["sync"]).one_at_a_time is False
    assert parser.parse_args(["sync", "--one-at-a-time"]).one_at_a_time is True
    assert parser.parse_args(["demo", "--one-at-a-time"]).one_at_a_time is True


# --- real syncs of the sandbox ---------------------------------------------------------------


def _sandbox_settings(sandbox: SandboxServer, db: Database) -> Settings:
    return load_settings(**sandbox_env(sandbox, db, *ACTIVITY, org=ORG))


# A cancelled meeting (and its attendees) is stamped with the time the sync saw it cancelled
# (the provider gives none): two stores synced seconds apart differ there, side by side or not.
STAMPED_WHEN_SEEN = {
    "activities": ("updated_at", "deleted_at"),
    "activity_participants": ("deleted_at",),
}


def assert_same_contents(actual: Database, expected: Database) -> None:
    """Every business table row for row, column by column (the stamped ones: set or not)."""
    got, want = contents(actual), contents(expected)
    for table in BUSINESS_TABLES:
        stamped = STAMPED_WHEN_SEEN.get(table, ())

        def value(row: Any, column: str, stamped: tuple[str, ...] = stamped) -> Any:
            return row[column] is not None if column in stamped else row[column]

        mine = {row.id: row._mapping for row in got[table]}
        theirs = {row.id: row._mapping for row in want[table]}
        assert mine.keys() == theirs.keys(), f"{table}: {len(mine)} rows, {len(theirs)} expected"
        differences = [
            (row_id, column, mine[row_id][column], theirs[row_id][column])
            for row_id in theirs
            for column in theirs[row_id]
            if value(mine[row_id], column) != value(theirs[row_id], column)
        ]
        assert not differences, f"{table}: {len(differences)} differing: {differences[:3]}"


def _counts(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in sorted(metadata.tables)
            if table not in ("schema_versions",)
        }


def _sync(db: Database, sandbox: SandboxServer, *, side_by_side: bool, **kwargs: Any) -> None:
    results = run_syncs(db, _sandbox_settings(sandbox, db), [SyncJob(p) for p in ACTIVITY],
                        side_by_side=side_by_side, **kwargs)  # fmt: skip
    assert all(r.ok for r in results), [r.error for r in results]


def _change(sandbox: SandboxServer) -> None:
    sandbox.mutate(modified_pct=5.0, seed=13)
    sandbox.mutate_slack(new_messages=20, late_replies=5, seed=13)
    sandbox.mutate_calendar(moved=3, cancelled=3, new=3, seed=13)


@pytest.mark.slow
def test_side_by_side_leaves_the_store_as_one_at_a_time_does(
    db: Database,
    second_store: Database,  # noqa: F811
    sandbox: SandboxServer,
) -> None:
    # First loads all at once (the hardest case: every table written by three syncs at once),
    # then incremental syncs side by side (the default), against one at a time each time.
    _sync(db, sandbox, side_by_side=True, first_loads_side_by_side=True)
    _sync(second_store, sandbox, side_by_side=False)
    assert_same_contents(db, second_store)
    assert _counts(db) == _counts(second_store)
    _change(sandbox)
    _sync(db, sandbox, side_by_side=True)
    _sync(second_store, sandbox, side_by_side=False)
    assert_same_contents(db, second_store)
    assert _counts(db) == _counts(second_store)
    with db.connect() as conn:
        resolved = conn.execute(
            text("SELECT count(*) FROM activity_participants WHERE contact_id IS NOT NULL")
        ).scalar_one()
    assert resolved > 0


@pytest.mark.slow
def test_a_stopped_side_by_side_sync_is_recorded_interrupted_and_the_next_one_resumes(
    db: Database,
    second_store: Database,  # noqa: F811
    sandbox: SandboxServer,
) -> None:
    # Slow enough to be stopped in the middle however fast the machine: at the test's scale
    # HubSpot's first load takes more calls than 10 a window, so it spans a 10-second window
    # (at 50 a window it could end before the interrupt, and the interrupt then hit pytest).
    usual_limit = sandbox.faults.hubspot.ten_second_limit
    sandbox.faults.hubspot.rate_limits = True
    sandbox.faults.hubspot.ten_second_limit = 10
    timer = threading.Timer(1.5, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _sync(db, sandbox, side_by_side=True, first_loads_side_by_side=True)
    assert time.monotonic() - started < 30
    assert sync_interrupted(db) == 130
    with db.connect() as conn:
        statuses = set(conn.execute(text("SELECT status FROM sync_runs")).scalars())
    assert SyncRunStatus.INTERRUPTED in statuses and SyncRunStatus.RUNNING not in statuses
    # The connector paces itself by the limit HubSpot's headers advertise: the usual one again.
    sandbox.faults.hubspot.rate_limits = False
    sandbox.faults.hubspot.ten_second_limit = usual_limit
    _sync(db, sandbox, side_by_side=True)  # resumes
    _sync(second_store, sandbox, side_by_side=False)
    assert_same_contents(db, second_store)


REVTOPS = str(Path(os.sys.executable).with_name("revtops"))


@pytest.mark.slow
def test_ctrl_c_during_revtops_sync_side_by_side_exits_130(db: Database) -> None:
    """A real ``revtops sync`` of three providers (side by side: two are incremental) gets
    SIGINT mid-run: every run it started is recorded interrupted, within seconds."""
    with SandboxServer(scale=0.05, seed=9) as sandbox:
        env = {**os.environ, **sandbox_env(sandbox, db, *ACTIVITY, org=ORG)}
        first = subprocess.run([REVTOPS, "sync", "--provider", "slack"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert first.returncode == 0, first.stderr
        first = subprocess.run([REVTOPS, "sync", "--provider", "google_calendar"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert first.returncode == 0, first.stderr
        sandbox.faults.hubspot.rate_limits = True
        sandbox.faults.hubspot.ten_second_limit = 50
        sandbox.faults.slack.rate_limits = True  # the others slow too: still running at Ctrl-C
        sandbox.mutate_slack(new_messages=50, late_replies=20, seed=13)
        victim = subprocess.Popen(
            [REVTOPS, "sync"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_sigint,
        )
        try:
            _wait_for_hubspot_pages(db, victim)
            sent = time.monotonic()
            victim.send_signal(signal.SIGINT)
            _, err = victim.communicate(timeout=60)
            stopped_in = time.monotonic() - sent
        finally:
            if victim.poll() is None:
                victim.kill()
    assert victim.returncode == 130, err
    assert stopped_in < 10, stopped_in
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("revtops sync: interrupted")
    with db.connect() as conn:
        runs = dict(
            conn.execute(
                text("SELECT provider, status FROM sync_runs WHERE provider = 'hubspot'")
            ).all()
        )
        running = conn.execute(
            text("SELECT count(*) FROM sync_runs WHERE status = 'running'")
        ).scalar_one()
    assert runs == {"hubspot": "interrupted"}
    assert running == 0


def _wait_for_hubspot_pages(db: Database, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            with db.connect() as conn:
                found = conn.execute(
                    text("SELECT count(*) FROM sync_cursors WHERE provider = 'hubspot'")
                ).scalar_one()
            if found >= 2:
                return
        except Exception:  # the writer holds the DuckDB file; look again
            pass
        time.sleep(0.2)
    raise AssertionError("the sync made no progress in 120 s")
