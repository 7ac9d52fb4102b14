"""A real Jupyter Server with the revtops extension and Supabase sign-in, on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from revtops_server.supabase import mint_token

from tests.browser.app_server import free_port

SECRET = "test-jwt-secret-with-at-least-32-bytes!!"
SUPABASE_URL = "http://127.0.0.1:9/supabase"  # never contacted: HS256 tokens verify locally
ADMIN_KEY = "admin-key-for-tests"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def token(self, email: str, subject: str | None = None, **overrides: object) -> str:
        return mint_token(
            secret=SECRET,
            supabase_url=SUPABASE_URL,
            subject=subject or f"sub-{email}",
            email=email,
            **overrides,
        )


def launch(home: Path, **extra_env: str) -> Server:
    """Start ``jupyter server`` with the extension and Supabase sign-in; wait until it answers."""
    port = free_port()
    log = home / "server.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REVTOPS_", "SUPABASE_"))},
        "REVTOPS_HOME": str(home / "revtops"),
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": SECRET,
        "REVTOPS_ADMIN_KEY": ADMIN_KEY,
        "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
        **extra_env,
    }
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--allow-root",
        f"--ServerApp.root_dir={home}",
        "--ServerApp.identity_provider_class=revtops_server.identity.SupabaseIdentityProvider",
        "--ServerApp.authorizer_class=revtops_server.identity.RevtopsAuthorizer",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # polled: a cold start under xdist load is slow
    while True:
        try:
            if httpx.get(f"{url}/revtops/api/health", timeout=2).status_code == 200:
                return Server(url, process, log)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"jupyter server did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = launch(tmp_path_factory.mktemp("server-home"))
    yield running
    stop(running)


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Server]:
    """The same server on a scratch PostgreSQL database of its own (NUL, lengths, constraints)."""
    from revtops_kernel.store.scratch import scratch_postgres

    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with scratch_postgres(admin_url, prefix="revtops_test_ext") as url:
        running = launch(tmp_path_factory.mktemp("pg-server-home"), REVTOPS_DATABASE_URL=url)
        try:
            yield running
        finally:
            stop(running)
