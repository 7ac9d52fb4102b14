"""Measure the sandbox: generation time and peak RSS per scale, and list-page throughput.

    python -m revtops_sandbox.measure --scales 1 10 --throughput-scale 1

Throughput is measured against a sandbox started the way the CLI starts it (its own process)
with one httpx client walking list pages of 100. Besides wall-clock pages per second it
reports the server's CPU time per page, which stays meaningful on a busy machine: the server
can serve at most 1000 / (CPU ms per page) pages per second on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

_GENERATE = """
import json, resource, sys, time
from revtops_sandbox.generate import generate_company
t = time.perf_counter()
company = generate_company(float(sys.argv[1]), 0)
seconds = time.perf_counter() - t
records = sum(company.counts().values())
t = time.perf_counter()
messages = len(company.slack.messages)
slack_seconds = time.perf_counter() - t
t = time.perf_counter()
events = len(company.calendars.events)
calendar_seconds = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "records": records,
                  "slack_seconds": slack_seconds, "messages": messages,
                  "calendar_seconds": calendar_seconds, "events": events}))
"""

# What a connector asks for, per object type: properties and associations.
WORKLOAD: dict[str, dict[str, str]] = {
    "contacts": {"properties": "firstname,lastname,email,jobtitle,hubspot_owner_id",
                 "associations": "companies"},
    "deals": {"properties": "dealname,amount,dealstage,pipeline,closedate,hubspot_owner_id",
              "associations": "companies,contacts"},
    "emails": {"properties": "hs_timestamp,hs_email_subject,hs_email_text,hs_email_direction,"
                             "hubspot_owner_id", "associations": "contacts,deals,companies"},
    "meetings": {"properties": "hs_timestamp,hs_meeting_title,hs_meeting_start_time,"
                               "hs_meeting_end_time,hubspot_owner_id",
                 "associations": "contacts,deals,companies"},
}  # fmt: skip


@dataclass(slots=True)
class Throughput:
    object_type: str
    pages: int
    records: int
    wall_pages_per_s: float
    server_cpu_ms_per_page: float | None
    client_cpu_ms_per_page: float

    @property
    def server_capacity_pages_per_s(self) -> float | None:
        ms = self.server_cpu_ms_per_page
        return None if not ms else 1000 / ms


def measure_generation(scale: float) -> dict[str, float]:
    """Generate in a fresh interpreter so the peak RSS is the company's alone."""
    out = subprocess.run(
        [sys.executable, "-c", _GENERATE, str(scale)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def measure_throughput(scale: float, max_pages: int = 300) -> list[Throughput]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "revtops_sandbox.server", "--port", str(port),
         "--scale", str(scale), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        token = _wait_for(base)["tokens"]["hubspot"]
        with httpx.Client(
            base_url=base + "/hubspot", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            results = [
                _walk(client, server.pid, t, params, max_pages) for t, params in WORKLOAD.items()
            ]
        peak = _peak_rss_mb(server.pid)
        if peak is not None:
            print(f"server at scale {scale:g}: peak RSS {peak:.0f} MB", flush=True)
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def _walk(
    client: httpx.Client, pid: int, object_type: str, params: dict[str, str], max_pages: int
) -> Throughput:
    pages = records = 0
    after: str | None = None
    cpu0, client0, t0 = _cpu_seconds(pid), time.process_time(), time.perf_counter()
    while pages < max_pages:
        r = client.get(
            f"/crm/v3/objects/{object_type}",
            params={"limit": "100", **params, **({"after": after} if after else {})},
        )
        r.raise_for_status()
        body = r.json()
        pages += 1
        records += len(body["results"])
        after = body.get("paging", {}).get("next", {}).get("after")
        if after is None:
            break
    wall = time.perf_counter() - t0
    cpu1 = _cpu_seconds(pid)
    server_ms = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) * 1000 / pages
    return Throughput(
        object_type,
        pages,
        records,
        pages / wall,
        server_ms,
        (time.process_time() - client0) * 1000 / pages,
    )


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _wait_for(base: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info: dict[str, Any] = httpx.get(base + "/_sandbox/info", timeout=5).json()
            return info
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revtops_sandbox.measure")
    parser.add_argument("--scales", type=float, nargs="*", default=[1.0, 10.0])
    parser.add_argument("--throughput-scale", type=float, default=1.0)
    parser.add_argument("--max-pages", type=int, default=300)
    args = parser.parse_args(argv)
    for scale in args.scales:
        g = measure_generation(scale)
        print(
            f"generate scale {scale:g}: {g['seconds']:.2f} s, peak RSS {g['peak_rss_mb']:.0f} MB, "
            f"{g['records']:.0f} records; on first use Slack {g['slack_seconds']:.2f} s "
            f"({g['messages']:.0f} messages), Calendar {g['calendar_seconds']:.2f} s "
            f"({g['events']:.0f} events)",
            flush=True,
        )
    if args.throughput_scale:
        for t in measure_throughput(args.throughput_scale, args.max_pages):
            cap = t.server_capacity_pages_per_s
            print(
                f"{t.object_type:9s} {t.pages:4d} pages: {t.wall_pages_per_s:6.0f} pages/s wall; "
                f"server {t.server_cpu_ms_per_page or float('nan'):.2f} CPU ms/page "
                f"(capacity {cap or float('nan'):.0f} pages/s); "
                f"client {t.client_cpu_ms_per_page:.2f} CPU ms/page",
                flush=True,
            )
            print(json.dumps(asdict(t)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
