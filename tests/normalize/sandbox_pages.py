"""Real provider pages from the sandbox, fetched the way a connector asks for them.

Used by the normalizer tests and by ``bench_normalize.py``: the records a normalizer sees in a
test are the exact JSON the sandbox serves, asking for the properties / fields the connector
asks for (``hubspot.PROPERTIES``, ``ASSOCIATIONS`` and ``HISTORY``; the Salesforce streams'
fields, without optional ones the sandbox's org does not have). Both are one declaration with
what the normalizers may read (``test_fields_requested``).
"""

from __future__ import annotations

from typing import Any

import httpx

from revtops_kernel.connectors.salesforce import STREAMS_BY_NAME
from revtops_kernel.normalize import hubspot
from revtops_sandbox.server import SandboxServer

ENGAGEMENTS = ("meetings", "calls", "emails", "notes", "tasks")
SF_VERSION = "v59.0"


def hubspot_client(server: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.hubspot_base_url,
        headers={"Authorization": f"Bearer {server.token_for('hubspot')}"},
        timeout=30,
    )


def salesforce_client(server: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.salesforce_instance_url,
        headers={"Authorization": f"Bearer {server.token_for('salesforce')}"},
        timeout=30,
    )


def hubspot_records(
    server: SandboxServer, stream: str, limit: int | None = None, archived: bool = False
) -> list[dict[str, Any]]:
    """Records of ``stream`` (owners, pipelines, or a CRM object type), following the paging."""
    with hubspot_client(server) as client:
        if stream == "pipelines":
            results: list[dict[str, Any]] = client.get("/crm/v3/pipelines/deals").json()["results"]
            return results
        path = "/crm/v3/owners" if stream == "owners" else f"/crm/v3/objects/{stream}"
        params: dict[str, Any] = {"limit": 100, "archived": str(archived).lower()}
        if stream in hubspot.PROPERTIES:
            params["properties"] = ",".join(hubspot.PROPERTIES[stream])
        if stream in hubspot.ASSOCIATIONS:
            params["associations"] = ",".join(hubspot.ASSOCIATIONS[stream])
        if stream in hubspot.HISTORY:  # HubSpot serves at most 50 a page with history
            params.update(propertiesWithHistory=",".join(hubspot.HISTORY[stream]), limit=50)
        out: list[dict[str, Any]] = []
        while limit is None or len(out) < limit:
            response = client.get(path, params=params)
            response.raise_for_status()
            page = response.json()
            out.extend(page["results"])
            after = page.get("paging", {}).get("next", {}).get("after")
            if after is None:
                break
            params["after"] = after
    return out if limit is None else out[:limit]


def salesforce_records(
    server: SandboxServer, sobject: str, where: str = "", query_all: bool = False
) -> list[dict[str, Any]]:
    """Every record of a SOQL query on ``sobject`` selecting the connector's fields."""
    fields = STREAMS_BY_NAME[sobject].fields
    soql = f"SELECT {', '.join(fields)} FROM {sobject} {where}".strip()
    endpoint = "queryAll" if query_all else "query"
    url: str | None = f"/services/data/{SF_VERSION}/{endpoint}"
    params: dict[str, str] | None = {"q": soql}
    out: list[dict[str, Any]] = []
    with salesforce_client(server) as client:
        while url is not None:
            response = client.get(url, params=params)
            response.raise_for_status()
            page = response.json()
            out.extend(page["records"])
            url, params = page.get("nextRecordsUrl"), None
    return out
