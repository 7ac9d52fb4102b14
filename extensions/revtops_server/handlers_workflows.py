"""REST endpoints for scheduled work: the organization's workflows, runs now, run history.

Workflows run notebooks on the server, so only the project's own notebooks (``notebooks/``) may
be scheduled from here, only an organization's admins may change them, and the ``org``
parameter is always the caller's organization: a workflow cannot be pointed at another org.

Every other check (name, schedule, parameters, caps) is the scheduling layer's; its errors map
to statuses by type (`base.ERROR_STATUS`): a malformed field 400, a taken name or a busy
workflow 409, a cap 429 (with ``Retry-After`` when waiting will help).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tornado import web

from revtops_kernel.notebooks import stock_directory
from revtops_kernel.scheduling import (
    WorkflowError,
    WorkflowLimits,
    add_workflow,
    get_workflow,
    list_workflows,
    remove_workflow,
    run_history,
    runs,
    update_workflow,
)
from revtops_kernel.scheduling.supervise import supervise

from .base import ApiHandler, Principal, to_json

PATCHABLE = ("parameters", "cron", "timezone", "enabled", "timeout_seconds")
NOTEBOOKS = stock_directory()  # the package's copy when installed, else the checkout's
_RUN_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="revtops-workflow")


def _schedulable() -> dict[str, Path]:
    return {p.name: p for p in NOTEBOOKS.glob("*.ipynb") if p.name != "app.ipynb"}


def _admin(handler: ApiHandler) -> Principal:
    principal = handler.principal()
    if principal.role != "admin":
        raise web.HTTPError(403, "only an organization's admins manage workflows")
    return principal


def _scoped_runs_possible(handler: ApiHandler) -> None:
    """With sign-in (several organizations) a run must be scoped to its organization, which
    only PostgreSQL can do (a writer role under row-level security): one embedded DuckDB file
    gives whatever opens it every organization's rows."""
    if handler.ctx.settings.supabase_url is not None and handler.ctx.db.is_duckdb:
        raise web.HTTPError(
            400,
            "workflows of several organizations need PostgreSQL: a run on the embedded DuckDB "
            "store could read every organization's data; set REVTOPS_DATABASE_URL to a "
            "PostgreSQL database",
        )


def _info(value: Any) -> dict[str, Any]:
    data = to_json(value)
    if isinstance(data, dict) and "notebook" in data:
        data["notebook"] = Path(str(data["notebook"])).name  # no server paths to clients
    if isinstance(data, dict) and "output_path" in data:
        data.pop("output_path")
    return data


class WorkflowsHandler(ApiHandler):
    def get(self) -> None:
        org = self.principal().organization_id
        found = list_workflows(self.ctx.db, org=org)
        self.reply({"workflows": [_info(w) for w in found], "notebooks": sorted(_schedulable())})

    def post(self) -> None:
        org = _admin(self).organization_id
        _scoped_runs_possible(self)
        data = self.body()
        name = self.text_field(data, "name", required=True)
        notebook = self.text_field(data, "notebook", required=True)
        cron = self.text_field(data, "cron", required=True)
        assert name is not None and notebook is not None and cron is not None
        path = _schedulable().get(notebook)
        if path is None:
            raise web.HTTPError(400, f"notebook must be one of {sorted(_schedulable())}")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise web.HTTPError(400, "'parameters' must be an object")
        created = add_workflow(
            self.ctx.db,
            name,
            path,
            cron,
            org=org,
            timezone=self.text_field(data, "timezone") or "UTC",
            parameters={**parameters, "org": org},
            enabled=bool(data.get("enabled", True)),
            owner=self.principal().email,
            limits=WorkflowLimits.from_settings(self.ctx.settings),
        )
        self.reply(_info(created), 201)


class WorkflowHandler(ApiHandler):
    def get(self, name: str) -> None:
        org = self.principal().organization_id
        workflow = _found(self, name, org)
        history = run_history(self.ctx.db, workflow.name, org=org)
        self.reply({"workflow": _info(workflow), "runs": [_info(r) for r in history]})

    def patch(self, name: str) -> None:
        """Change a workflow: ``parameters`` are merged into the stored ones (a ``null`` value
        brings back the notebook's default), ``cron``, ``timezone``, ``enabled``,
        ``timeout_seconds`` replace theirs. Checked by the scheduling layer as on create, so a
        parameter passes the same name and kind checks; ``org`` stays the caller's."""
        org = _admin(self).organization_id
        current = _found(self, name, org)
        data = self.body()
        unknown = sorted(set(data) - set(PATCHABLE))
        if unknown:
            raise web.HTTPError(400, f"cannot change {', '.join(unknown)}; fields: {PATCHABLE}")
        changes: dict[str, Any] = {}
        for field in ("cron", "timezone"):
            if field in data:
                changes[field] = self.text_field(data, field, required=True)
        if "enabled" in data:
            if not isinstance(data["enabled"], bool):
                raise web.HTTPError(400, "'enabled' must be true or false")
            changes["enabled"] = data["enabled"]
        if "timeout_seconds" in data:
            timeout = data["timeout_seconds"]
            if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
                raise web.HTTPError(400, "'timeout_seconds' must be a positive integer")
            changes["timeout_seconds"] = timeout
        if "parameters" in data:
            given = data["parameters"]
            if not isinstance(given, dict):
                raise web.HTTPError(400, "'parameters' must be an object")
            merged = {**current.parameters, **given}
            kept = {key: value for key, value in merged.items() if value is not None}
            changes["parameters"] = {**kept, "org": org}
        if not changes:
            raise web.HTTPError(400, f"nothing to change; fields: {PATCHABLE}")
        _scoped_runs_possible(self)
        updated = update_workflow(
            self.ctx.db,
            name,
            org=org,
            limits=WorkflowLimits.from_settings(self.ctx.settings),
            **changes,
        )
        self.reply(_info(updated))

    def delete(self, name: str) -> None:
        org = _admin(self).organization_id
        _found(self, name, org)
        remove_workflow(self.ctx.db, name, org=org)  # WorkflowBusyError while a run is on: 409
        self.reply({"name": name, "removed": True})


class WorkflowRunHandler(ApiHandler):
    """Run now, in the background (or on the Celery workers with REVTOPS_BROKER_URL): 202."""

    async def post(self, name: str) -> None:
        org = _admin(self).organization_id
        _scoped_runs_possible(self)
        workflow = _found(self, name, org)
        overrides = self.body().get("parameters") or {}
        if not isinstance(overrides, dict):
            raise web.HTTPError(400, "'parameters' must be an object")
        run = runs.claim_manual(
            self.ctx.db,
            workflow,
            f"api@{runs.process_label()}",
            {**overrides, "org": org},
            limits=WorkflowLimits.from_settings(self.ctx.settings),
        )
        settings = self.ctx.settings
        if settings.broker_url:
            # Celery takes about a second to import; only deployments with a broker need it.
            from revtops_kernel.scheduling.celery_app import CeleryDispatcher

            dispatcher = CeleryDispatcher(settings)
            dispatcher.dispatch(run)
            dispatcher.shutdown(0)
        else:
            loop = asyncio.get_running_loop()
            loop.run_in_executor(_RUN_POOL, supervise, self.ctx.db, settings, run.id)
        self.reply({"run_id": str(run.id), "status": run.status}, 202)


def _found(handler: ApiHandler, name: str, org: str) -> Any:
    try:
        return get_workflow(handler.ctx.db, name, org=org)
    except WorkflowError:
        raise web.HTTPError(404, f"no workflow {name!r}") from None
