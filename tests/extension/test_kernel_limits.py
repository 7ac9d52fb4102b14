"""The web app's kernels at team size: past REVTOPS_MAX_KERNELS a visitor gets a page saying
the server is at capacity (503, Retry-After), and an idle kernel is culled after
REVTOPS_KERNEL_IDLE_TIMEOUT so the next visitor gets in. A real `revtops app` in local mode."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.browser.app_server import running_app

pytestmark = pytest.mark.slow

TOKEN = "kernel-limits"


def test_past_the_limit_visitors_are_told_and_culling_frees_a_place(tmp_path: Path) -> None:
    with running_app(
        tmp_path,
        pool_size=0,
        supabase=False,
        JUPYTER_TOKEN=TOKEN,
        REVTOPS_DATABASE_URL=f"duckdb:///{tmp_path / 'store.duckdb'}",
        REVTOPS_MAX_KERNELS="1",
        REVTOPS_KERNEL_IDLE_TIMEOUT="5",
    ) as app:
        page = f"{app.url}/?token={TOKEN}"
        first = httpx.get(page, timeout=120)
        assert first.status_code == 200, first.text[-2000:]
        refused = httpx.get(page, timeout=60)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "120"
        assert "at capacity" in refused.text and "All 1 sessions" in refused.text
        # Nobody connected to the first page's kernel: after 5 idle seconds it is culled.
        deadline = time.monotonic() + 90
        while True:
            again = httpx.get(page, timeout=120)
            if again.status_code == 200:
                break
            assert again.status_code == 503
            assert time.monotonic() < deadline, "the idle kernel was never culled"
            time.sleep(2)
        assert "Culling kernel" in app.log.read_text() or "culling" in app.log.read_text().lower()
