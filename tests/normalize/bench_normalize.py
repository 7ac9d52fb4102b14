"""Throughput of the HubSpot and Salesforce normalizers on one core.

    .venv/bin/python tests/normalize/bench_normalize.py [--records 50000] [--rounds 3]

Pages are fetched once from an in-process sandbox, then cloned into ``--records`` distinct
records (own ids; owners and accounts varied so the link cache sees realistic repetition:
60 owners, 20,000 accounts) before the clock starts. The timed loop is ``normalize_page`` over
pages of 100, as a sync calls it, and the clock is this process's CPU time, so other load on
the machine counts less. Not collected by pytest: speed is measured here, not asserted in tests.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sandbox_pages import ENGAGEMENTS, hubspot_records, salesforce_records

from revtops_kernel.normalize import hubspot, salesforce, values
from revtops_kernel.normalize.base import NormalizeContext, RecordNormalizer, normalize_page
from revtops_sandbox.server import SandboxServer

PAGE = 100
Work = list[tuple[RecordNormalizer, list[dict[str, Any]]]]


def clone_hubspot(templates: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` distinct records shaped like ``templates``."""
    out = []
    for i in range(n):
        src = templates[i % len(templates)]
        props = dict(src["properties"])
        props["hs_object_id"] = str(1_000_000 + i)
        if props.get("hubspot_owner_id"):
            props["hubspot_owner_id"] = str(52_550_000 + i % 60)
        record = {**src, "id": str(1_000_000 + i), "properties": props}
        if "companies" in src.get("associations", {}):
            company = {"id": str(18_000_000 + i % 20_000), "type": "company"}
            record["associations"] = {**src["associations"], "companies": {"results": [company]}}
        out.append(record)
    return out


def clone_salesforce(templates: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        src = templates[i % len(templates)]
        sfid, account = f"{src['Id'][:3]}x{i:014d}", f"001x{i % 20_000:014d}"
        out.append({**src, "Id": sfid, "AccountId": account})
    return out


def pages(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [records[start : start + PAGE] for start in range(0, len(records), PAGE)]


def rate(work: Work, ctx: NormalizeContext, id_field: str = "id") -> float:
    """Records per CPU second through ``normalize_page``; fails if anything is quarantined."""
    quarantined = 0
    values.linked_id.cache_clear()  # every round starts cold, as a new sync process does
    started = time.process_time()
    for normalizer, page in work:
        result = normalize_page("bench", page, normalizer, ctx, id_field=id_field)
        quarantined += len(result.quarantined)
    elapsed = time.process_time() - started
    if quarantined:
        raise AssertionError(f"{quarantined} records quarantined in the benchmark")
    return sum(len(page) for _, page in work) / elapsed


def workloads(server: SandboxServer, n: int) -> dict[str, tuple[Work, NormalizeContext, str]]:
    """Each case's pages, context and id field, built from the server's real records."""
    hs = NormalizeContext("org_bench", "hubspot")
    hs_stages = hubspot.stage_map(hubspot_records(server, "pipelines"), hs)
    hs = NormalizeContext("org_bench", "hubspot", stages=hs_stages)
    sf = NormalizeContext("org_bench", "salesforce")
    sf_stages = salesforce.stage_map(salesforce_records(server, "OpportunityStage"), sf)
    sf = NormalizeContext("org_bench", "salesforce", stages=sf_stages)
    deals = clone_hubspot(hubspot_records(server, "deals", limit=500), n)
    engagements: Work = [  # pages of one type each, as a sync hands them over
        (hubspot.NORMALIZERS[stream], page)
        for stream in ENGAGEMENTS
        for page in pages(clone_hubspot(hubspot_records(server, stream, limit=200), n // 5))
    ]
    opportunities = clone_salesforce(salesforce_records(server, "Opportunity")[:500], n)
    tasks = clone_salesforce(salesforce_records(server, "Task")[:500], n)
    opportunity_pages: Work = [(salesforce.normalize_opportunity, p) for p in pages(opportunities)]
    return {
        "HubSpot deals": ([(hubspot.normalize_deal, p) for p in pages(deals)], hs, "id"),
        "HubSpot engagements": (engagements, hs, "id"),
        "Salesforce Opportunity": (opportunity_pages, sf, "Id"),
        "Salesforce Task": ([(salesforce.normalize_task, p) for p in pages(tasks)], sf, "Id"),
    }


def measure(n: int, rounds: int = 3, scale: float = 0.05) -> dict[str, float]:
    """Best records/s of ``rounds`` per case, for ``n`` records each."""
    with SandboxServer(scale=scale, seed=1, freeze_gc=False) as server:
        cases = workloads(server, n)
    return {
        case: max(rate(work, ctx, id_field) for _ in range(rounds))
        for case, (work, ctx, id_field) in cases.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for case, per_s in measure(args.records, args.rounds).items():
        print(f"{case:<24}{per_s:>10,.0f} records/s  ({args.records:,} records, CPU time)")


if __name__ == "__main__":
    main()
