"""Local emulation of the providers' APIs over a deterministic synthetic company.

Used by the demo, the tutorials and the tests; nothing in the core imports it.

    from revtops_sandbox import SandboxServer
    with SandboxServer(scale=0.05, seed=1) as sb:
        ...  # sb.hubspot_base_url, sb.salesforce_instance_url, sb.token, sb.company

Imports are lazy so that ``import revtops_sandbox`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revtops_sandbox.company import Company
    from revtops_sandbox.faults import Faults, ProviderFaults
    from revtops_sandbox.generate import generate_company
    from revtops_sandbox.mutate import MutationResult
    from revtops_sandbox.options import add_cli_arguments
    from revtops_sandbox.server import SandboxServer, run_from_args, serve

__all__ = [
    "Company",
    "Faults",
    "MutationResult",
    "ProviderFaults",
    "SandboxServer",
    "add_cli_arguments",
    "generate_company",
    "run_from_args",
    "serve",
]

_WHERE = {
    "Company": "company",
    "Faults": "faults",
    "ProviderFaults": "faults",
    "generate_company": "generate",
    "MutationResult": "mutate",
    "SandboxServer": "server",
    "add_cli_arguments": "options",
    "run_from_args": "server",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
