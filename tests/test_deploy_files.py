"""The deployment files cannot rot: deploy/compose.yaml's commands parse with the `revtops` CLI,
every variable it gives a revtops service is a setting, its health checks name real routes and
commands, and the Dockerfile builds what the README says (we cannot run containers here)."""

from __future__ import annotations

import re
import shlex

import pytest
from compose_services import COMPOSE, REPO, load_compose, revtops_services
from revtops_server.routes import ROUTES

from revtops_kernel.cli import build_parser
from revtops_kernel.settings import Settings

DOCKERFILE = REPO / "Dockerfile"
NGINX = REPO / "deploy" / "nginx.conf"
SETTING_NAMES = {
    field.validation_alias
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, str)
}


def _parses(argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports a bad argument by exiting
        raise AssertionError(f"`revtops {shlex.join(argv)}` does not parse") from exc
    assert getattr(args, "handler", None) is not None, f"`revtops {shlex.join(argv)}` runs nothing"


def test_the_topology_is_the_issues() -> None:
    services = revtops_services()
    replicas = {name: s.replicas for name, s in services.items()}
    assert replicas == {"migrate": 1, "app": 2, "scheduler": 2, "worker": 3}
    assert {"postgres", "redis", "lb"} <= set(load_compose()["services"])


def test_every_command_parses_with_the_cli() -> None:
    for service in revtops_services().values():
        _parses(service.command)
        check = service.healthcheck
        if check and check[:2] == ["CMD", "revtops"]:
            _parses(check[2:])
    assert revtops_services()["migrate"].command == ["db", "upgrade"]


def test_every_variable_given_to_revtops_is_a_setting() -> None:
    for service in revtops_services().values():
        unknown = set(service.environment) - SETTING_NAMES
        assert not unknown, f"{service.name}: {sorted(unknown)} are not revtops settings"
        assert "REVTOPS_DATABASE_URL" in service.environment, service.name
    for name in ("app", "scheduler", "worker"):
        assert "REVTOPS_BROKER_URL" in revtops_services()[name].environment, name
    # The web app signs users in with Supabase and serves the admin API.
    app = revtops_services()["app"].environment
    assert {"SUPABASE_URL", "SUPABASE_JWT_SECRET", "REVTOPS_ADMIN_KEY"} <= set(app)


def test_the_required_secrets_are_listed_in_the_files_header() -> None:
    text = COMPOSE.read_text()
    header = text.split("\nname:", 1)[0]
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required, "no required variable found"
    missing = {name for name in required if name not in header}
    assert not missing, f"required but not listed in the header: {sorted(missing)}"


def test_the_apps_health_check_is_its_readiness_route_on_its_port() -> None:
    app = revtops_services()["app"]
    port = app.command[app.command.index("--port") + 1]
    probe = " ".join(app.healthcheck)
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", probe)
    assert url is not None, probe
    assert url.group(1) == port
    assert url.group(2) in {path for path, _handler in ROUTES}
    assert url.group(2).endswith("/health/ready")
    # The load balancer is sticky and forwards to that port.
    nginx = NGINX.read_text()
    assert re.search(r"^\s*ip_hash;", nginx, re.M)
    assert f"server app:{port};" in nginx
    assert "proxy_set_header Upgrade" in nginx  # kernel websockets


def test_the_dockerfile_installs_the_wheel_as_a_user_with_revtops_as_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert text.count("FROM python:3.11-slim") == 2
    assert "pip wheel" in text and re.search(r"pip install .*/wheels/\*\.whl", text)
    assert 'ENTRYPOINT ["revtops"]' in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    # Its Debian packages are .ci/setup's (WeasyPrint's Pango, a font, poppler).
    setup = (REPO / ".ci" / "setup").read_text()
    ci_packages = set(re.search(r"packages=\(([^)]*)\)", setup).group(1).split())  # type: ignore[union-attr]
    installed = re.search(r"--no-install-recommends\s*\\?\s*([^&]*)&&", text)
    assert installed is not None
    packages = set(installed.group(1).replace("\\", " ").split())
    assert packages and packages <= ci_packages, packages - ci_packages
    # Everything the wheel is built from is copied in.
    for path in ("pyproject.toml", "README.md", "revtops_kernel", "extensions", "notebooks"):
        assert re.search(rf"^COPY .*\b{re.escape(path)}\b", text, re.M), path


@pytest.mark.parametrize("name", ["scheduler", "worker"])
def test_background_services_check_their_own_heartbeat(name: str) -> None:
    assert revtops_services()[name].healthcheck == ["CMD", "revtops", "status", "--alive", name]


def test_the_env_example_lists_every_variable_compose_reads() -> None:
    example = (REPO / "deploy" / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    read = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    assert read == listed, (read - listed, listed - read)
