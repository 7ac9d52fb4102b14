"""The extension's HTTP status for each domain error comes from its type (`base.ERROR_STATUS`),
never from its message."""

from __future__ import annotations

import pytest
from revtops_server.base import ERROR_STATUS, status_for

from revtops_kernel.errors import (
    KernelBindingError,
    QueryRefusedError,
    RevtopsError,
    UnknownOrganizationError,
    WorkflowBusyError,
    WorkflowExistsError,
    WorkflowInputError,
    WorkflowLimitError,
)
from revtops_kernel.scheduling.cron import ScheduleError
from revtops_kernel.tenancy import TenancyConflictError, TenancyError


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (WorkflowLimitError("too many runs", setting="REVTOPS_X", limit=3), 429),
        (WorkflowExistsError("nightly", "acme"), 409),
        (WorkflowBusyError("nightly is running"), 409),
        (TenancyConflictError("an organization already uses the domain acme.com"), 409),
        (UnknownOrganizationError("acme", ["acme-co"]), 404),
        # subclasses of listed types take their nearest listed ancestor's status
        (ScheduleError("not a cron expression"), 400),
        (WorkflowInputError("name", "too long"), 400),
        # the rest of the tree is the client's problem: 400
        (TenancyError("already is only a word here"), 400),
        (QueryRefusedError("not a SELECT"), 400),
        (KernelBindingError("k1", "is already bound to another user"), 400),
    ],
)
def test_the_status_comes_from_the_type(error: RevtopsError, status: int) -> None:
    assert status_for(error) == status


def test_every_listed_type_is_a_revtops_error() -> None:
    assert all(issubclass(cls, RevtopsError) for cls in ERROR_STATUS)
    assert ERROR_STATUS[RevtopsError] == 400
