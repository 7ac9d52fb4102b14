"""The verified-answer router: a question in words → a verified query and its parameters.

Deterministic and local (no network, no I/O): the caller passes the names it knows (owners,
pipelines, stages) and the user's clock. ``route`` either answers with a query, its parameters
and a confidence, or says it is not confident, with the closest verified questions.
"""

from revtops_kernel.agent.routing.names import OwnerName
from revtops_kernel.agent.routing.router import (
    Route,
    RouteContext,
    Suggestion,
    route,
    suggested_questions,
)

__all__ = ["OwnerName", "Route", "RouteContext", "Suggestion", "route", "suggested_questions"]
