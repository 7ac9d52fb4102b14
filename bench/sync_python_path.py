"""The sync's Python path per stream, without HTTP or a store: CPU per record of a CRM's pages.

    python bench/sync_python_path.py [--scale 0.2] [--runs 5]

Serves ``SandboxServer(scale, seed)``, fetches every page of HubSpot's CRM streams (companies,
contacts, deals, the five engagement types) and Salesforce's (Account, Contact, Opportunity,
OpportunityHistory, OpportunityContactRole, Task) as the connectors ask for them, then times,
per stream, what a sync does with them in Python between the socket and the store: decoding
each page (``jsoncodec.loads``), normalizing it as ``run_sync`` does (``raw`` serialized, so a
columnar normalizer keeps tuples), holding it in a batch (``sync._Pending``) and building the
batch's Arrow tables (``upsert.prepare_batch``). Best of ``--runs``, process time, with the
collector off (the sync raises its threshold: ``sync._fewer_collections``). Run it with
``PYTHONPATH`` naming a frozen worktree to compare two code trees on the same machine.
Salesforce pages are the REST query's JSON (2,000 records a page); a full sync above the
Bulk API threshold reads CSV instead, whose parsing is not timed here.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import httpx
from _common import progress

from revtops_kernel import jsoncodec
from revtops_kernel.connectors.base import Page
from revtops_kernel.connectors.salesforce import STREAMS_BY_NAME
from revtops_kernel.normalize import hubspot, salesforce
from revtops_kernel.normalize.base import NormalizeContext, normalize_page
from revtops_kernel.store.upsert import _dump_json, _synced_table, prepare_batch
from revtops_kernel.sync import _Pending

HUBSPOT_STREAMS = (
    "companies",
    "contacts",
    "deals",
    "meetings",
    "calls",
    "emails",
    "notes",
    "tasks",
)
SALESFORCE_STREAMS = (
    "Account", "Contact", "Opportunity", "OpportunityHistory", "OpportunityContactRole", "Task",
)  # fmt: skip
SF_VERSION = "v59.0"
SF_PAGE = 2000


def hubspot_pages(server: Any) -> tuple[list[dict[str, Any]], dict[str, list[bytes]]]:
    """(pipelines, each stream's response bodies) as the connector asks for them."""
    headers = {"Authorization": f"Bearer {server.token_for('hubspot')}"}
    bodies: dict[str, list[bytes]] = {}
    with httpx.Client(base_url=server.hubspot_base_url, headers=headers, timeout=60) as client:
        pipelines = client.get("/crm/v3/pipelines/deals").json()["results"]
        for stream in HUBSPOT_STREAMS:
            params: dict[str, Any] = {"limit": 100, "archived": "false"}
            params["properties"] = ",".join(hubspot.PROPERTIES[stream])
            if stream in hubspot.ASSOCIATIONS:
                params["associations"] = ",".join(hubspot.ASSOCIATIONS[stream])
            if stream in hubspot.HISTORY:  # at most 50 a page with history
                params.update(propertiesWithHistory=",".join(hubspot.HISTORY[stream]), limit=50)
            pages = bodies[stream] = []
            while True:
                response = client.get(f"/crm/v3/objects/{stream}", params=params)
                response.raise_for_status()
                pages.append(response.content)
                after = response.json().get("paging", {}).get("next", {}).get("after")
                if after is None:
                    break
                params["after"] = after
    return pipelines, bodies


def salesforce_pages(server: Any) -> tuple[list[dict[str, Any]], dict[str, list[bytes]]]:
    """(OpportunityStage records, each stream's records as REST query pages of 2,000)."""
    headers = {"Authorization": f"Bearer {server.token_for('salesforce')}"}
    url = f"/services/data/{SF_VERSION}/query"
    records: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(
        base_url=server.salesforce_instance_url, headers=headers, timeout=60
    ) as client:
        for sobject in ("OpportunityStage", *SALESFORCE_STREAMS):
            soql = f"SELECT {', '.join(STREAMS_BY_NAME[sobject].fields)} FROM {sobject}"
            next_url: str | None = url
            params: dict[str, str] | None = {"q": soql}
            out = records[sobject] = []
            while next_url is not None:
                response = client.get(next_url, params=params)
                response.raise_for_status()
                page = response.json()
                out.extend(page["records"])
                next_url, params = page.get("nextRecordsUrl"), None
    stages = records.pop("OpportunityStage")
    bodies = {
        sobject: [
            jsoncodec.dumps_sorted({"records": rows[i : i + SF_PAGE]}).encode()
            for i in range(0, len(rows), SF_PAGE)
        ]
        for sobject, rows in records.items()
    }
    return stages, bodies


def python_path(
    stream: str,
    bodies: list[bytes],
    normalizer: Any,
    ctx: NormalizeContext,
    key: str,
    id_field: str,
) -> int:
    """What a sync does with ``bodies`` in Python; the number of records."""
    pending, count = _Pending(stream), 0
    for body in bodies:
        records = jsoncodec.loads(body)[key]
        count += len(records)
        normalized = normalize_page(
            stream, records, normalizer, ctx, id_field=id_field, raw=_dump_json
        )
        pending.add(Page(records=records, checkpoint=None), normalized, id_field)
    for table, rows in pending.rows.items():
        prepare_batch(_synced_table(table), rows)
    for table, tuples in pending.tuples.items():
        prepare_batch(_synced_table(table), tuples)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from revtops_sandbox import SandboxServer

    progress(f"fetching the CRM pages of a scale-{args.scale:g} sandbox")
    with SandboxServer(scale=args.scale, seed=args.seed) as server:
        pipelines, hubspot_bodies = hubspot_pages(server)
        stages, salesforce_bodies = salesforce_pages(server)
    plain = NormalizeContext("bench", "hubspot")
    hubspot_ctx = NormalizeContext("bench", "hubspot", stages=hubspot.stage_map(pipelines, plain))
    plain = NormalizeContext("bench-salesforce", "salesforce")
    salesforce_ctx = NormalizeContext(
        "bench-salesforce", "salesforce", stages=salesforce.stage_map(stages, plain)
    )
    work = [
        ("hubspot", s, b, hubspot.NORMALIZERS[s], hubspot_ctx, "results", "id")
        for s, b in hubspot_bodies.items()
    ] + [
        ("salesforce", s, b, salesforce.NORMALIZERS[s], salesforce_ctx, "records", "Id")
        for s, b in salesforce_bodies.items()
    ]
    gc.disable()
    print(f"{'provider':10} {'stream':24} {'records':>8} {'best CPU s':>10} {'us/record':>9}")
    totals: dict[str, tuple[int, float]] = {}
    for provider, stream, bodies, normalizer, ctx, key, id_field in work:
        best = float("inf")
        for _ in range(args.runs):
            started = time.process_time()
            count = python_path(stream, bodies, normalizer, ctx, key, id_field)
            best = min(best, time.process_time() - started)
            gc.collect()
        n, seconds = totals.get(provider, (0, 0.0))
        totals[provider] = (n + count, seconds + best)
        print(f"{provider:10} {stream:24} {count:8,} {best:10.3f} {1e6 * best / count:9.1f}")
    for provider, (n, seconds) in totals.items():
        print(f"{provider:10} {'all':24} {n:8,} {seconds:10.3f} {1e6 * seconds / n:9.1f}")


if __name__ == "__main__":
    main()
