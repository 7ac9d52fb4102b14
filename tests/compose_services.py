"""deploy/compose.yaml read as the services it starts: the topology test starts exactly these as
processes, and the deploy-files test checks them against the CLI and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "deploy" / "compose.yaml"
# Services that run the revtops image (the others are PostgreSQL, Redis and nginx).
REVTOPS_SERVICES = ("migrate", "app", "scheduler", "worker")


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]  # the `revtops` arguments (the image's entrypoint is `revtops`)
    replicas: int
    environment: dict[str, str]
    healthcheck: list[str] = field(default_factory=list)


def load_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict), f"{COMPOSE} is not a mapping"
    return loaded


def revtops_services() -> dict[str, Service]:
    services = load_compose()["services"]
    found = {}
    for name in REVTOPS_SERVICES:
        spec = services[name]
        command = spec["command"]
        assert isinstance(command, list), f"{name}: command must be a list (exec form)"
        check = spec.get("healthcheck", {}).get("test", [])
        found[name] = Service(
            name,
            [str(part) for part in command],
            int(spec.get("deploy", {}).get("replicas", 1)),
            {str(k): str(v) for k, v in (spec.get("environment") or {}).items()},
            [str(part) for part in check],
        )
    return found


def with_options(command: list[str], **values: str) -> list[str]:
    """``command`` with the values of some ``--option VALUE`` pairs replaced (a free port, a
    loopback address): the option must be there."""
    result = list(command)
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        assert option in result, f"{option} is not in {command}"
        result[result.index(option) + 1] = value
    return result
