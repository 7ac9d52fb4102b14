"""Sample data for artifact tests: two organizations' deals, and a stored conversation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from revtops_kernel.store import Database
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STAGES = ("Discovery", "Proposal", "Negotiation", "Closed Won")
OWNERS = ("ana", "ben")


def acme_deals() -> list[dict[str, object]]:
    """24 deals: stage i % 4, owner i % 2, amount 1000 * (i + 1), closing in Jan-Mar 2026."""
    return [
        {
            "organization_id": "acme",
            "source_system": "hubspot",
            "source_id": f"d{i}",
            "name": f"Acme deal {i}",
            "amount": 1000 * (i + 1),
            "stage_name": STAGES[i % 4],
            "deal_type": OWNERS[i % 2],  # stands in for an owner name: no join needed
            "close_date": date(2026, 1 + i % 3, 1 + i),
            "is_won": i % 4 == 3,
            "updated_at": T0,
        }
        for i in range(24)
    ]


def globex_deals() -> list[dict[str, object]]:
    # Another organization's deals, in a stage of its own and with huge amounts: any leak shows.
    return [
        {
            "organization_id": "globex",
            "source_system": "hubspot",
            "source_id": f"g{i}",
            "name": f"Globex deal {i}",
            "amount": 9_000_000,
            "stage_name": "Globex Only",
            "updated_at": T0,
        }
        for i in range(5)
    ]


def stage_totals() -> dict[str, float]:
    totals: dict[str, float] = {}
    for deal in acme_deals():
        stage = str(deal["stage_name"])
        totals[stage] = totals.get(stage, 0) + float(deal["amount"])  # type: ignore[arg-type]
    return totals


def load_sales(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deals", acme_deals() + globex_deals())
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, domain, created_at, updated_at) VALUES "
                "('acme', 'Acme Corp', 'acme.com', :t, :t), "
                "('globex', 'Globex', 'globex.com', :t, :t)"
            ),
            {"t": T0},
        )


# --- a stored conversation, in the shape the agent loop writes --------------------------------

PIPELINE_SQL = (
    "SELECT stage_name, sum(amount) AS total, count(*) AS deals FROM deals "
    "WHERE close_date >= '2026-01-01' AND close_date < '2026-04-01' "
    "GROUP BY stage_name ORDER BY total DESC"
)
PIPELINE_CHART = {
    "kind": "chart",
    "title": "Q1 pipeline by stage",
    "sql": PIPELINE_SQL,
    "type": "bar",
    "x": "stage_name",
    "y": ["total"],
    "value_format": "currency",
}
ALL_DEALS_TABLE = {
    "kind": "table",
    "title": "Every open deal",
    "sql": "SELECT name, stage_name, amount, close_date FROM deals ORDER BY amount DESC",
    "labels": {"name": "Deal", "stage_name": "Stage"},
    "formats": {"amount": "currency"},
}
# Model output and synced text that must come out inert.
XSS_MARKDOWN = (
    "**Pipeline** is concentrated in Discovery.\n\n"
    "<script>alert('answer')</script>\n\n"
    '<img src="http://127.0.0.1:{port}/raw-img.png?leak=1" onerror="alert(2)">\n\n'
    "[click me](javascript:alert(3)) and [docs](https://example.com/docs)\n\n"
    "![tracker](http://127.0.0.1:{port}/md-img.png?data=secret)\n\n"
    "| Stage | Note |\n|---|---|\n| Discovery | <b onmouseover=alert(4)>hover</b> |\n"
)
VERIFIED_CALL = {
    "name": "forecast_by_category",
    "params": {"start_date": "2026-01-01", "end_date": "2026-03-31"},
}
QUESTION_1 = "What does our Q1 pipeline look like by stage? <script>alert('question')</script>"
QUESTION_2 = "List every deal as a table."


def tool_use(tool_id: str, name: str, tool_input: dict[str, object]) -> dict[str, object]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def tool_result(tool_id: str, payload: str, *, error: bool = False) -> dict[str, object]:
    block: dict[str, object] = {"type": "tool_result", "tool_use_id": tool_id, "content": payload}
    if error:
        block["is_error"] = True
    return block


def store_conversation(
    db: Database, org: str, messages: list[tuple[str, list[dict[str, object]]]], title: str
) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO conversations (id, organization_id, title, model, created_at, "
                "updated_at) VALUES (:id, :org, :title, 'claude-opus-4-5', :t, :t)"
            ),
            {"id": conversation_id, "org": org, "title": title, "t": T0},
        )
        for seq, (role, blocks) in enumerate(messages):
            conn.execute(
                text(
                    "INSERT INTO messages (id, conversation_id, organization_id, seq, role, "
                    "content, created_at) VALUES (:id, :cid, :org, :seq, :role, :content, :t)"
                ),
                {
                    "id": uuid.uuid4(),
                    "cid": conversation_id,
                    "org": org,
                    "seq": seq,
                    "role": role,
                    "content": json.dumps({"blocks": blocks}),
                    "t": T0 + timedelta(seconds=seq),
                },
            )
    return conversation_id


def sample_conversation(db: Database, *, port: int = 9) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Two questions: a refused then corrected query, a chart and an XSS-laden answer; a long
    table. Returns the conversation id and its artifact ids."""
    from revtops_kernel.artifacts import create_artifact

    conversation_id = uuid.uuid4()
    chart = create_artifact(db, org="acme", spec=PIPELINE_CHART, tool_use_id="toolu_3")
    table = create_artifact(db, org="acme", spec=ALL_DEALS_TABLE, tool_use_id="toolu_4")
    messages: list[tuple[str, list[dict[str, object]]]] = [
        ("user", [{"type": "text", "text": QUESTION_1}]),
        ("assistant", [{"type": "text", "text": "Let me look at the deals."},
                       tool_use("toolu_1", "run_sql_query", {"sql": "SELECT nope FROM deals"})]),
        ("user", [tool_result("toolu_1", '{"error": "column nope does not exist"}', error=True)]),
        ("assistant", [tool_use("toolu_2", "run_sql_query", {"sql": PIPELINE_SQL})]),
        ("user", [tool_result("toolu_2", '{"row_count": 4, "truncated": false}')]),
        ("assistant", [tool_use("toolu_3", "create_artifact", PIPELINE_CHART)]),
        ("user", [tool_result("toolu_3", json.dumps({"artifact_id": str(chart.artifact_id),
                  "kind": "chart", "title": chart.title}))]),
        ("assistant", [{"type": "text", "text": XSS_MARKDOWN.replace("{port}", str(port))}]),
        ("user", [{"type": "text", "text": QUESTION_2}]),
        ("assistant", [tool_use("toolu_5", "run_verified_query", VERIFIED_CALL)]),
        ("user", [tool_result("toolu_5", '{"row_count": 3, "truncated": false}')]),
        ("assistant", [tool_use("toolu_4", "create_artifact", ALL_DEALS_TABLE)]),
        ("user", [tool_result("toolu_4", json.dumps({"artifact_id": str(table.artifact_id),
                  "kind": "table", "title": table.title}))]),
        ("assistant", [{"type": "text", "text": "Here are all **144** deals, largest first."}]),
    ]  # fmt: skip
    conversation_id = store_conversation(db, "acme", messages, "Q1 pipeline review")
    with db.begin() as conn:
        conn.execute(text("UPDATE artifacts SET conversation_id = :cid"), {"cid": conversation_id})
    return conversation_id, [chart.artifact_id, table.artifact_id]


def many_deals(count: int = 120) -> list[dict[str, object]]:
    """More acme deals, so that a table of every deal runs over several pages."""
    return [
        {
            "organization_id": "acme",
            "source_system": "hubspot",
            "source_id": f"bulk{i}",
            "name": f"Bulk deal {i:03d}",
            "amount": 100 + i,
            "stage_name": STAGES[i % 4],
            "close_date": date(2026, 2, 1 + i % 28),
            "updated_at": T0,
        }
        for i in range(count)
    ]
