"""What a workflow may store and run: slug names, five-field schedules a minimum interval apart,
the notebook's declared parameters with scalar values of their kinds, and caps per organization.

Checked on every path (``add_workflow``, ``update_workflow``, ``runs.claim_manual``, the CLI),
and once more by the runner just before papermill writes parameters into a notebook.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scheduling_helpers import store_workflow_row, write_notebook
from sqlalchemy import func, select

from revtops_kernel.cli import main
from revtops_kernel.errors import (
    WorkflowExistsError,
    WorkflowInputError,
    WorkflowLimitError,
    WorkflowParameterError,
)
from revtops_kernel.scheduling import (
    ScheduleError,
    WorkflowLimits,
    add_workflow,
    get_run,
    get_workflow,
    list_workflows,
    runs,
    update_workflow,
)
from revtops_kernel.scheduling.cron import workflow_cron
from revtops_kernel.scheduling.parameters import (
    MAX_TEXT_LENGTH,
    check_parameters,
    declared_parameters,
)
from revtops_kernel.scheduling.runner import execute_run
from revtops_kernel.scheduling.workflows import check_name, get_workflow_by_id, runs_table
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database

FIVE_MINUTES = timedelta(minutes=5)
# The parameter name of the security report: papermill would write it as a line of code.
ATTACK = "\nimport pathlib; pathlib.Path({marker!r}).write_text('pwned')\nx"


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """Declarations of every kind papermill reports, annotated or not."""
    return write_notebook(
        tmp_path / "sync.ipynb",
        "\n".join(
            [
                "org = None  # None: REVTOPS_ORG",
                'provider = "all"',
                "full_refresh = False",
                "limit = 10",
                "ratio = 0.5",
                'label: str = "x"',
                "retries: Optional[int] = None",
                "started = datetime.now()  # not a literal: any scalar",
                "revtops_run_id = None",
            ]
        ),
        "print(org, provider)",
    )


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nightly-sync", "a", "0", "sync_2", "x" * 63])
def test_slug_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../../x", "Nightly", "", "-x", "_x", "x" * 64, "a b", "a\n", "a.b", "é", "a/b", "%2e"],
)
def test_names_no_route_could_address_are_refused(name: str) -> None:
    with pytest.raises(WorkflowInputError, match="invalid workflow name") as refused:
        check_name(name)
    assert refused.value.field == "name"
    assert "\n" not in str(refused.value)


# --- cron --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "stored"),
    [
        ("0 2 * * *", "0 2 * * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("  0 7 * * 1-5 ", "0 7 * * 1-5"),
        ("58 22,23 * * *", "58 22,23 * * *"),
        ("0 0 29 2 *", "0 0 29 2 *"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@WEEKLY", "0 0 * * 0"),
    ],
)
def test_five_field_schedules_and_macros_are_stored_spelled_out(cron: str, stored: str) -> None:
    assert workflow_cron(cron, "Europe/Paris", FIVE_MINUTES) == stored


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * * *", "exactly 5 fields"),  # every second (croniter's seconds field)
        ("0 0 * * * */2", "exactly 5 fields"),
        ("0 0 1 1 * 2030", "exactly 5 fields"),
        ("* * *", "exactly 5 fields"),
        ("61 * * * *", "exactly 5 fields"),
        ("@reboot", "unsupported cron macro '@reboot'"),
        ("@every 5m", "unsupported cron macro"),
        ("*/1 * * * *", "runs 1 minute apart"),
        ("* * * * *", "runs 1 minute apart"),
        ("*/4 * * * *", "runs 4 minutes apart"),
        ("0,2 3 * * *", "runs 2 minutes apart"),  # a short gap once a day is still one
        ("0,58 0,23 * * *", "runs 2 minutes apart"),  # 23:58 then 00:00, across midnight
        ("0 0 31 2 *", "never comes due"),
        ("0 " * 120, "at most 200 characters"),
    ],
)
def test_schedules_a_user_may_not_set_are_refused(cron: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)) as refused:
        workflow_cron(cron, "UTC", FIVE_MINUTES)
    assert refused.value.field == "cron"


def test_the_minimum_interval_is_a_setting() -> None:
    limits = WorkflowLimits.from_settings(load_settings(REVTOPS_WORKFLOW_MIN_INTERVAL_MINUTES="60"))
    assert limits.min_interval == timedelta(hours=1)
    with pytest.raises(ScheduleError, match="at most every 60 minutes"):
        workflow_cron("*/30 * * * *", "UTC", limits.min_interval)
    assert workflow_cron("0 * * * *", "UTC", limits.min_interval) == "0 * * * *"
    assert workflow_cron("*/1 * * * *", "UTC", timedelta(minutes=1)) == "*/1 * * * *"
    assert WorkflowLimits.from_settings(load_settings()) == WorkflowLimits()  # same defaults


def test_an_unknown_time_zone_names_its_field() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone") as refused:
        workflow_cron("0 2 * * *", "Mars/Olympus", FIVE_MINUTES)
    assert refused.value.field == "timezone"


# --- parameters --------------------------------------------------------------------------------


def test_declared_parameters_come_from_papermills_inspection(notebook: Path) -> None:
    declared = declared_parameters(notebook)
    assert list(declared) == [
        "org",
        "provider",
        "full_refresh",
        "limit",
        "ratio",
        "label",
        "retries",
        "started",
        "revtops_run_id",
    ]
    kinds = {name: (d.kind, d.optional) for name, d in declared.items()}
    assert kinds["org"] == ("None", False)
    assert kinds["full_refresh"] == ("bool", False)
    assert kinds["label"] == ("str", False)
    assert kinds["retries"] == ("int", True)
    assert kinds["started"] == ("any", False)


def test_an_undeclared_name_is_refused_naming_it_on_one_line(notebook: Path) -> None:
    name = ATTACK.format(marker="/tmp/x")
    with pytest.raises(WorkflowParameterError) as refused:
        check_parameters({"provider": "hubspot", name: 1}, notebook)
    assert refused.value.parameter == name and refused.value.notebook == "sync.ipynb"
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        f"parameter {name!r} is not declared by sync.ipynb (declared: org, provider, "
        "full_refresh, limit, ratio, label, retries, started)"
    )


@pytest.mark.parametrize("name", ["revtops_run_id", "revtops_scheduled_for"])
def test_names_the_runner_sets_cannot_be_given(notebook: Path, name: str) -> None:
    with pytest.raises(WorkflowParameterError, match="set by the runner"):
        check_parameters({name: "forged"}, notebook)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("org", "acme", True),
        ("org", None, True),
        ("org", 3, False),
        ("org", True, False),
        ("provider", "hubspot", True),
        ("provider", None, False),
        ("full_refresh", True, True),
        ("full_refresh", 1, False),
        ("full_refresh", "true", False),
        ("limit", 25, True),
        ("limit", 2.5, False),
        ("limit", True, False),  # bool is an int in Python, not in a declaration
        ("limit", "25", False),
        ("ratio", 1, True),
        ("ratio", 0.25, True),
        ("ratio", False, False),
        ("label", "weekly", True),
        ("label", 7, False),
        ("retries", 3, True),
        ("retries", None, True),
        ("retries", "3", False),
        ("started", "2025-01-01", True),
        ("started", 1.5, True),
    ],
)
def test_values_must_be_of_the_declared_kind(
    notebook: Path, name: str, value: object, accepted: bool
) -> None:
    if accepted:
        assert check_parameters({name: value}, notebook) == {name: value}
    else:
        with pytest.raises(WorkflowParameterError, match=f"parameter '{name}' must be") as refused:
            check_parameters({name: value}, notebook)
        assert refused.value.parameter == name


@pytest.mark.parametrize("value", [["a"], {"k": "v"}, ("a",)])
def test_lists_and_objects_are_refused(notebook: Path, value: object) -> None:
    with pytest.raises(WorkflowParameterError, match="lists and objects are refused"):
        check_parameters({"started": value}, notebook)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numbers_are_finite(notebook: Path, value: float) -> None:
    with pytest.raises(WorkflowParameterError, match="finite"):
        check_parameters({"ratio": value}, notebook)


def test_text_is_capped_in_length(notebook: Path) -> None:
    longest = "x" * MAX_TEXT_LENGTH
    assert check_parameters({"provider": longest}, notebook) == {"provider": longest}
    with pytest.raises(WorkflowParameterError, match="1,001 characters long; at most 1,000"):
        check_parameters({"provider": longest + "x"}, notebook)


@pytest.mark.parametrize("char", ["\x00", "\r", "\x1b", "\x7f", "\x85", "\x0b", "\x0c"])
def test_control_characters_other_than_tab_and_newline_are_refused(
    notebook: Path, char: str
) -> None:
    with pytest.raises(WorkflowParameterError, match="control character") as refused:
        check_parameters({"provider": f"hub{char}spot"}, notebook)
    assert "position 3" in str(refused.value) and "\n" not in str(refused.value)
    assert check_parameters({"provider": "a\tb\nc"}, notebook) == {"provider": "a\tb\nc"}


def test_a_notebook_without_a_parameters_cell_takes_none(tmp_path: Path) -> None:
    bare = write_notebook(tmp_path / "bare.ipynb", "# no assignment here")
    with pytest.raises(WorkflowParameterError, match=r"declared: none"):
        check_parameters({"x": 1}, bare)
    assert check_parameters({}, bare) == {}


# --- through the store (both backends) ---------------------------------------------------------


def _count_runs(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


def test_add_update_and_manual_runs_all_check_parameters(db: Database, notebook: Path) -> None:
    attack = ATTACK.format(marker="/tmp/never")
    with pytest.raises(WorkflowParameterError, match=r"is not declared by sync\.ipynb"):
        add_workflow(db, "sync", notebook, "0 2 * * *", org="acme", parameters={attack: 1})
    assert list_workflows(db, org="acme") == []
    wf = add_workflow(
        db, "sync", notebook, "0 2 * * *", org="acme", parameters={"provider": "hubspot"}
    )
    with pytest.raises(WorkflowParameterError, match="must be true or false"):
        update_workflow(db, "sync", org="acme", parameters={"full_refresh": "yes"})
    assert get_workflow(db, "sync", org="acme").parameters == {"provider": "hubspot"}
    with pytest.raises(WorkflowParameterError, match="is not declared"):
        runs.claim_manual(db, wf, "test", {attack: 1})
    with pytest.raises(WorkflowParameterError, match="set by the runner"):
        runs.claim_manual(db, wf, "test", {"revtops_run_id": "forged"})
    assert _count_runs(db) == 0
    run = runs.claim_manual(db, wf, "test", {"full_refresh": True})
    assert run.parameters == {"provider": "hubspot", "full_refresh": True}


def test_add_checks_name_and_schedule_and_types_a_taken_name(db: Database, notebook: Path) -> None:
    with pytest.raises(WorkflowInputError, match=re.escape("invalid workflow name '../../x'")):
        add_workflow(db, "../../x", notebook, "0 2 * * *", org="acme")
    with pytest.raises(ScheduleError, match="exactly 5 fields"):
        add_workflow(db, "every-second", notebook, "* * * * * *", org="acme")
    with pytest.raises(ScheduleError, match="runs 1 minute apart"):
        add_workflow(db, "every-minute", notebook, "*/1 * * * *", org="acme")
    assert list_workflows(db) == []
    made = add_workflow(db, "hourly", notebook, "@hourly", org="acme")
    assert made.cron == "0 * * * *"
    with pytest.raises(WorkflowExistsError) as taken:
        add_workflow(db, "hourly", notebook, "0 2 * * *", org="acme")
    assert (taken.value.name, taken.value.org) == ("hourly", "acme")
    with pytest.raises(ScheduleError, match="runs 2 minutes apart"):
        update_workflow(db, "hourly", org="acme", cron="0,2 * * * *")
    assert update_workflow(db, "hourly", org="acme", cron="@daily").cron == "0 0 * * *"


def test_a_legacy_row_can_still_be_paused(db: Database, notebook: Path) -> None:
    """Only what changes is checked: a workflow stored before these rules can be disabled."""
    store_workflow_row(db, "Legacy.Name", notebook, "* * * * * *", org="acme")
    paused = update_workflow(db, "Legacy.Name", org="acme", enabled=False)
    assert not paused.enabled and paused.cron == "* * * * * *"
    with pytest.raises(ScheduleError):
        update_workflow(db, "Legacy.Name", org="acme", timezone="Europe/Paris")


def test_an_organization_has_at_most_so_many_workflows(db: Database, notebook: Path) -> None:
    limits = WorkflowLimits(max_workflows_per_org=2)
    for name in ("one", "two"):
        add_workflow(db, name, notebook, "0 2 * * *", org="acme", limits=limits)
    with pytest.raises(WorkflowLimitError, match="has 2 workflows") as full:
        add_workflow(db, "three", notebook, "0 2 * * *", org="acme", limits=limits)
    assert full.value.setting == "REVTOPS_WORKFLOW_MAX_PER_ORG" and full.value.limit == 2
    assert full.value.retry_after is None
    add_workflow(db, "three", notebook, "0 2 * * *", org="other", limits=limits)  # per org


def test_runs_in_flight_per_organization_are_capped(db: Database, notebook: Path) -> None:
    limits = WorkflowLimits(max_active_runs_per_org=2)
    flows = [add_workflow(db, name, notebook, "0 2 * * *", org="acme") for name in ("a", "b", "c")]
    first = runs.claim_manual(db, flows[0], "test", limits=limits)
    runs.claim_manual(db, flows[1], "test", limits=limits)
    with pytest.raises(WorkflowLimitError, match="has 2 runs queued or running") as full:
        runs.claim_manual(db, flows[2], "test", limits=limits)
    assert full.value.setting == "REVTOPS_WORKFLOW_MAX_ACTIVE_RUNS_PER_ORG"
    assert full.value.retry_after is None
    other = add_workflow(db, "c", notebook, "0 2 * * *", org="other")
    runs.claim_manual(db, other, "test", limits=limits)  # another organization's share
    runs.start(db, first.id, "w", "/o.ipynb")
    runs.finish(db, first.id, "succeeded")
    assert runs.claim_manual(db, flows[2], "test", limits=limits).status == "queued"


def test_manual_runs_per_workflow_per_hour_are_capped(db: Database, notebook: Path) -> None:
    limits = WorkflowLimits(max_manual_runs_per_hour=2)
    wf = add_workflow(db, "sync", notebook, "0 2 * * *", org="acme")
    for _ in range(2):
        run = runs.claim_manual(db, wf, "test", limits=limits)
        runs.start(db, run.id, "w", "/o.ipynb")
        runs.finish(db, run.id, "succeeded")
    before = datetime.now(UTC)
    with pytest.raises(WorkflowLimitError, match="started by hand 2 times") as full:
        runs.claim_manual(db, wf, "test", limits=limits)
    assert full.value.setting == "REVTOPS_WORKFLOW_MAX_MANUAL_RUNS_PER_HOUR"
    assert full.value.retry_after is not None and 3500 < full.value.retry_after <= 3600
    # Scheduled runs do not count against it.
    due = before.replace(microsecond=0) + timedelta(minutes=1)
    assert runs.claim_scheduled(db, wf, due, "scheduler") is not None


# --- the runner --------------------------------------------------------------------------------


def _legacy_run(db: Database, notebook: Path, parameters: dict[str, object]) -> object:
    """A stored workflow and a queued run carrying ``parameters``, as an older version (or a
    person with database access) could have written them: nothing checked them."""
    workflow_id = store_workflow_row(
        db, "legacy", notebook, "0 2 * * *", org="acme", parameters=parameters
    )
    due = datetime(2025, 6, 2, 2, tzinfo=UTC)
    run = runs.claim_scheduled(db, get_workflow_by_id(db, workflow_id), due, "scheduler")
    assert run is not None and run.parameters == parameters
    return run.id


def test_papermill_would_run_a_name_as_code(tmp_path: Path, notebook: Path) -> None:
    """Why names are checked: papermill writes ``name = value`` into the notebook as given."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    marker = tmp_path / "pwned.txt"
    nb = load_notebook_node(str(notebook))  # as papermill's execute_notebook loads it
    injected = parameterize_notebook(nb, {ATTACK.format(marker=str(marker)): 1})
    tagged = [c for c in injected.cells if "injected-parameters" in c.metadata.get("tags", [])]
    source = tagged[0].source
    assert f"\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('pwned')\n" in source


def test_the_runner_refuses_a_stored_injected_name_without_executing(
    db: Database, env_for: Callable[..., Settings], tmp_path: Path, notebook: Path
) -> None:
    settings = env_for(db)
    marker = tmp_path / "pwned.txt"
    run_id = _legacy_run(db, notebook, {ATTACK.format(marker=str(marker)): 1})
    execute_run(db, settings, run_id)  # type: ignore[arg-type]
    run = get_run(db, run_id)  # type: ignore[arg-type]
    assert run.status == "failed" and run.error_name == "WorkflowParameterError"
    assert "is not declared by sync.ipynb" in (run.error or "")
    assert not marker.exists()
    assert not (settings.runs_dir / "legacy" / f"{run_id}.ipynb").exists()  # papermill never ran


@pytest.mark.slow
@pytest.mark.postgres
def test_a_runner_process_refuses_stored_parameters_of_the_wrong_kind(
    pg_store: Database, env_for: Callable[..., Settings], tmp_path: Path, notebook: Path
) -> None:
    """The real path: the supervisor starts ``python -m revtops_kernel.scheduling.runner``."""
    from revtops_kernel.scheduling.supervise import supervise

    settings = env_for(pg_store)
    marker = tmp_path / "pwned.txt"
    run_id = _legacy_run(
        pg_store,
        notebook,
        {"provider": ["hubspot"], ATTACK.format(marker=str(marker)): 1},
    )
    supervise(pg_store, settings, run_id)  # type: ignore[arg-type]
    run = get_run(pg_store, run_id)  # type: ignore[arg-type]
    assert run.status == "failed" and run.error_name == "WorkflowParameterError", run.error
    assert "parameter 'provider' must be text; lists and objects are refused" in (run.error or "")
    assert not marker.exists()


# --- the CLI -----------------------------------------------------------------------------------


def test_the_cli_reports_a_refused_parameter_on_one_line(
    notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["workflows", "add", "sync", str(notebook), "--cron", "0 2 * * *", "-p", "x y=1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "revtops: parameter 'x y' is not declared by sync.ipynb (declared: org, provider, "
        "full_refresh, limit, ratio, label, retries, started)\n"
    )
    assert main(["workflows", "add", "../x", str(notebook), "--cron", "0 2 * * *"]) == 1
    assert "invalid workflow name '../x'" in capsys.readouterr().err
    assert main(["workflows", "add", "s", str(notebook), "--cron", "* * * * * *"]) == 1
    assert "exactly 5 fields" in capsys.readouterr().err
    assert main(["workflows", "add", "sync", str(notebook), "--cron", "@daily"]) == 0
    assert "0 0 * * *" in capsys.readouterr().out
    assert main(["workflows", "run", "sync", "-p", "full_refresh=[1]"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("revtops: parameter 'full_refresh' must be true or false")
    assert err.count("\n") == 1
