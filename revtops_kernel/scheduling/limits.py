"""The caps on what one organization may schedule and run, from the settings.

A workflow runs code on the server's workers, so each organization gets a bounded share: a
number of workflows, a minimum interval between due times, a number of runs in flight, and a
number of runs started by hand per workflow per hour. One run per workflow at a time holds as
well (see ``runs``). The defaults are the settings' defaults, for callers without settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from revtops_kernel.settings import Settings


@dataclass(frozen=True)
class WorkflowLimits:
    min_interval: timedelta = timedelta(minutes=5)
    max_workflows_per_org: int = 50
    max_active_runs_per_org: int = 5
    max_manual_runs_per_hour: int = 12

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkflowLimits:
        return cls(
            min_interval=timedelta(minutes=settings.workflow_min_interval_minutes),
            max_workflows_per_org=settings.workflow_max_per_org,
            max_active_runs_per_org=settings.workflow_max_active_runs_per_org,
            max_manual_runs_per_hour=settings.workflow_max_manual_runs_per_hour,
        )
