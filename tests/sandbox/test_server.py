"""Running the sandbox: in a thread for tests, and as the CLI's own process."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from revtops_sandbox.company import DEFAULT_ANCHOR
from revtops_sandbox.options import today
from revtops_sandbox.server import DEFAULT_PORT, SandboxServer, add_cli_arguments


def test_context_manager_serves_on_an_ephemeral_port_and_stops() -> None:
    with (
        SandboxServer(scale=0.01, seed=2, freeze_gc=False) as a,
        SandboxServer(scale=0.01, seed=2, freeze_gc=False) as b,
    ):
        assert a.port != b.port and a.port > 0
        assert a.hubspot_base_url == f"http://127.0.0.1:{a.port}/hubspot"
        assert a.salesforce_instance_url == f"http://127.0.0.1:{a.port}/salesforce"
        for sb in (a, b):
            r = httpx.get(
                sb.hubspot_base_url + "/crm/v3/objects/companies",
                headers={"Authorization": f"Bearer {sb.token}"},
            )
            assert r.status_code == 200 and r.json()["results"]
        port = a.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_sandbox/info")


def test_token_is_ambiguous_once_providers_diverge() -> None:
    with SandboxServer(scale=0.01, freeze_gc=False) as sb:
        shared = sb.token
        sb.rotate_token("salesforce")
        assert sb.token_for("hubspot") == shared != sb.token_for("salesforce")
        with pytest.raises(RuntimeError, match="token_for"):
            _ = sb.token
        sb.rotate_token()
        assert sb.token == sb.token_for("salesforce")


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.host, defaults.port, defaults.scale, defaults.seed) == (
        "127.0.0.1",
        DEFAULT_PORT,
        1.0,
        0,
    )
    # The command line anchors the company to today (a live-looking demo); tests pass a day.
    assert defaults.anchor == today() and defaults.rate_limits is False
    assert DEFAULT_ANCHOR.isoformat() == "2026-11-01T00:00:00+00:00"
    args = parser.parse_args(
        ["--port", "9000", "--scale", "10", "--seed", "4", "--anchor", "2025-01-31",
         "--rate-limits", "--malformed-rate", "0.01"]
    )  # fmt: skip
    assert (args.port, args.scale, args.seed, args.rate_limits) == (9000, 10.0, 4, True)
    assert args.anchor.isoformat() == "2025-01-31T00:00:00+00:00"
    with pytest.raises(SystemExit):
        parser.parse_args(["--anchor", "yesterday"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_cli_process_serves_until_terminated() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "revtops_sandbox.server", "--port", str(port),
         "--scale", "0.01", "--seed", "3", "--rate-limits", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        info: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while not info:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/_sandbox/info").json()
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert info["seed"] == 3 and info["counts"]["companies"] == 50
        faults = httpx.get(f"http://127.0.0.1:{port}/_sandbox/faults").json()
        assert faults["hubspot"]["rate_limits"] is True
        r = httpx.get(
            info["hubspot_base_url"] + "/crm/v3/objects/deals",
            headers={"Authorization": f"Bearer {info['tokens']['hubspot']}"},
        )
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"HubSpot base URL:        http://127.0.0.1:{port}/hubspot" in out
    assert "Bearer token:" in out
