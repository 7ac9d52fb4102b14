from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import text

from revtops_kernel.errors import UpsertError
from revtops_kernel.ids import record_id
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def deal(source_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "organization_id": "acme",
        "source_system": "hubspot",
        "source_id": source_id,
        "name": f"Deal {source_id}",
        "amount": Decimal("1250.50"),
        "currency": "USD",
        "stage_name": "Proposal",
        "close_date": date(2026, 3, 31),
        "is_closed": False,
        "is_won": False,
        "probability": Decimal("0.4"),
        "account_id": record_id("acme", "hubspot", "accounts", "9001"),
        "created_at": T0 - timedelta(days=30),
        "updated_at": T0,
        "raw": {"id": source_id, "properties": {"amount": "1250.50", "dealname": "x"}},
    }
    row.update(overrides)
    return row


def table_checksum(db: Database, table: str) -> tuple[int, str]:
    """Row count and a digest over every column of every row, in key order."""
    columns = [c.name for c in metadata.tables[table].columns]
    with db.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY source_system, source_id")
        ).all()
    digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return len(rows), digest


def fetch(db: Database, sql: str) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql)).all())


def test_rows_land_with_their_derived_ids_and_types(db: Database) -> None:
    with db.begin() as conn:
        result = upsert(conn, "deals", [deal("1"), deal("2", amount=None)])
    assert (result.received, result.unique, result.written) == (2, 2, 2)
    rows = fetch(db, "SELECT id, amount, close_date, updated_at, raw FROM deals ORDER BY source_id")
    assert rows[0].id == record_id("acme", "hubspot", "deals", "1")
    assert rows[0].amount == Decimal("1250.50")
    assert rows[1].amount is None
    assert rows[0].close_date == date(2026, 3, 31)
    assert rows[0].updated_at == T0
    assert rows[0].raw == {"id": "1", "properties": {"amount": "1250.50", "dealname": "x"}}


def test_the_same_batch_twice_changes_nothing(db: Database) -> None:
    batch = [deal(str(i), amount=Decimal(i) * 100) for i in range(50)]
    with db.begin() as conn:
        assert upsert(conn, "deals", batch).written == 50
    before = table_checksum(db, "deals")
    with db.begin() as conn:
        again = upsert(conn, "deals", batch)
    assert (again.written, again.unchanged) == (0, 50)
    assert table_checksum(db, "deals") == before


def test_an_older_row_never_overwrites_a_newer_one(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deals", [deal("1", name="current", updated_at=T0)])
    with db.begin() as conn:
        stale = upsert(conn, "deals", [deal("1", name="stale", updated_at=T0 - timedelta(hours=1))])
    assert stale.written == 0
    assert fetch(db, "SELECT name FROM deals")[0].name == "current"
    with db.begin() as conn:
        newer = upsert(conn, "deals", [deal("1", name="newer", updated_at=T0 + timedelta(hours=1))])
    assert newer.written == 1
    assert fetch(db, "SELECT name, updated_at FROM deals")[0] == ("newer", T0 + timedelta(hours=1))


def test_a_row_without_a_stored_timestamp_is_overwritten(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deals", [deal("1", name="no time", updated_at=None)])
        assert upsert(conn, "deals", [deal("1", name="timed")]).written == 1
    assert fetch(db, "SELECT name FROM deals")[0].name == "timed"


def test_same_timestamp_with_new_content_is_written(db: Database) -> None:
    # A re-normalization (new code, same provider version) must reach the table.
    with db.begin() as conn:
        upsert(conn, "deals", [deal("1", stage_name="Proposal")])
        assert upsert(conn, "deals", [deal("1", stage_name="Negotiation")]).written == 1
    assert fetch(db, "SELECT stage_name FROM deals")[0].stage_name == "Negotiation"


def test_equal_keys_in_one_batch_collapse_to_the_latest(db: Database) -> None:
    batch = [
        deal("1", name="middle", updated_at=T0),
        deal("1", name="latest", updated_at=T0 + timedelta(minutes=5)),
        deal("1", name="oldest", updated_at=T0 - timedelta(minutes=5)),
        deal("2", name="first of a tie", updated_at=T0),
        deal("2", name="last of a tie", updated_at=T0),
    ]
    with db.begin() as conn:
        result = upsert(conn, "deals", batch)
    assert (result.received, result.unique, result.written) == (5, 2, 2)
    names = [r.name for r in fetch(db, "SELECT name FROM deals ORDER BY source_id")]
    assert names == ["latest", "last of a tie"]


def test_only_the_given_columns_are_updated(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deals", [deal("1", name="keep me", amount=Decimal("10"))])
        partial = {
            "organization_id": "acme",
            "source_system": "hubspot",
            "source_id": "1",
            "amount": Decimal("20"),
            "updated_at": T0 + timedelta(minutes=1),
        }
        assert upsert(conn, "deals", [partial]).written == 1
    assert fetch(db, "SELECT name, amount FROM deals")[0] == ("keep me", Decimal("20.00"))


def test_one_batch_of_new_changed_unchanged_and_stale_rows(db: Database) -> None:
    # New and rewritten rows take separate statements on DuckDB (store.upsert): one batch
    # mixing every case writes exactly the new and the changed rows, and a rewritten row keeps
    # its id and the stored columns the batch does not give.
    with db.begin() as conn:
        upsert(conn, "deals", [deal(str(i), name=f"stored {i}") for i in range(4)])
    ids_before = {r.source_id: r.id for r in fetch(db, "SELECT source_id, id FROM deals")}
    later = T0 + timedelta(hours=1)
    given = ("organization_id", "source_system", "source_id", "amount", "updated_at")

    def part(source_id: str, **overrides: Any) -> dict[str, Any]:
        return {k: v for k, v in deal(source_id, **overrides).items() if k in given}

    batch = [
        part("0", amount=Decimal("99"), updated_at=later),  # changed
        part("1"),  # unchanged
        part("2", amount=Decimal("1"), updated_at=T0 - timedelta(hours=1)),  # stale
        part("5", amount=Decimal("5")),  # new, twice: the later one lands
        part("5", amount=Decimal("6"), updated_at=later),
        part("6", amount=None),  # new
    ]
    with db.begin() as conn:
        result = upsert(conn, "deals", batch)
    assert (result.received, result.unique, result.written) == (6, 5, 3)
    rows = {r.source_id: r for r in fetch(db, "SELECT source_id, id, name, amount FROM deals")}
    assert sorted(rows) == ["0", "1", "2", "3", "5", "6"]
    assert (rows["0"].name, rows["0"].amount, rows["0"].id) == (
        "stored 0",
        Decimal("99.00"),
        ids_before["0"],
    )
    assert (rows["1"].name, rows["2"].amount) == ("stored 1", Decimal("1250.50"))
    assert (rows["5"].name, rows["5"].amount) == (None, Decimal("6.00"))
    assert rows["5"].id == record_id("acme", "hubspot", "deals", "5")
    assert rows["6"].amount is None


def test_keys_are_per_organization_and_per_source(db: Database) -> None:
    with db.begin() as conn:
        upsert(
            conn,
            "deals",
            [deal("1"), deal("1", organization_id="globex"), deal("1", source_system="salesforce")],
        )
    ids = {r.id for r in fetch(db, "SELECT id FROM deals")}
    assert len(ids) == 3


def test_dataframe_and_arrow_batches_upsert_like_dicts(db: Database) -> None:
    rows = [deal(str(i)) for i in range(3)]
    with db.begin() as conn:
        upsert(conn, "deals", rows)
    expected = table_checksum(db, "deals")
    frame = pd.DataFrame(rows)
    with db.begin() as conn:
        assert upsert(conn, "deals", frame).written == 0
        arrow = pa.Table.from_pandas(frame.drop(columns=["raw", "account_id"]))
        assert upsert(conn, "deals", arrow).written == 0
    assert table_checksum(db, "deals") == expected


def test_json_payloads_compare_by_content_not_key_order(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deals", [deal("1", raw={"a": 1, "b": [1, 2]})])
        assert upsert(conn, "deals", [deal("1", raw={"b": [1, 2], "a": 1})]).written == 0


def test_text_with_nul_characters_is_kept_without_them(db: Database) -> None:
    with db.begin() as conn:
        upsert(
            conn,
            "activities",
            [
                {
                    "organization_id": "acme",
                    "source_system": "slack",
                    "source_id": "C1:1700000000.000100",
                    "activity_type": "slack_message",
                    "body": 'quote: "deal" <b>bold</b>, comma, newline\nend',
                    "raw": {"text": "bad \u0000 byte"},
                    "updated_at": T0,
                }
            ],
        )
    row = fetch(db, "SELECT body, raw FROM activities")[0]
    assert row.body == 'quote: "deal" <b>bold</b>, comma, newline\nend'
    assert row.raw == {"text": "bad  byte"}


def test_bad_batches_are_refused_with_the_reason(db: Database) -> None:
    with db.begin() as conn:
        with pytest.raises(UpsertError, match="unknown column"):
            upsert(conn, "deals", [deal("1", dealname="typo")])
        with pytest.raises(UpsertError, match="source_id is empty"):
            upsert(conn, "deals", [deal("1"), deal(None)])  # type: ignore[arg-type]
        with pytest.raises(UpsertError, match="not a synced table"):
            upsert(conn, "users", [deal("1")])
        with pytest.raises(UpsertError, match="every row needs source_system"):
            upsert(conn, "deals", [{"organization_id": "acme", "source_id": "1"}])
        with pytest.raises(UpsertError, match="amount"):
            upsert(conn, "deals", [deal("1", amount="12,5O0")])
    assert fetch(db, "SELECT count(*) AS n FROM deals")[0].n == 0


def test_an_empty_batch_is_a_no_op(db: Database) -> None:
    with db.begin() as conn:
        assert upsert(conn, "deals", []).written == 0


def test_a_failed_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.begin() as conn:
        upsert(conn, "deals", [deal("1")])
        raise RuntimeError("crash after the upsert, before commit")
    assert fetch(db, "SELECT count(*) AS n FROM deals")[0].n == 0


def test_larger_batches_round_trip(db: Database) -> None:
    rows = [
        deal(
            str(i), amount=Decimal(i % 997) + Decimal("0.25"), updated_at=T0 + timedelta(seconds=i)
        )
        for i in range(5_000)
    ]
    with db.begin() as conn:
        assert upsert(conn, "deals", rows).written == 5_000
    changed = [
        dict(r, stage_name="Won", updated_at=r["updated_at"] + timedelta(days=1))
        for r in rows[::10]
    ]
    with db.begin() as conn:
        assert upsert(conn, "deals", changed + rows).written == 500
    total = fetch(db, "SELECT count(*) AS n, sum(amount) AS s FROM deals")[0]
    assert total.n == 5_000
    assert total.s == sum(r["amount"] for r in rows)
    assert fetch(db, "SELECT count(*) AS n FROM deals WHERE stage_name = 'Won'")[0].n == 500


def test_rows_stored_with_the_standard_librarys_json_are_not_rewritten(db: Database) -> None:
    """raw is serialized with orjson now; rows a store got from json.dumps (the previous
    serializer) must compare equal, or the first sync after upgrading rewrites every row.
    Payloads orjson spells differently from json.dumps included."""
    payloads = [
        {"id": "1", "properties": {"dealname": "Café Müller 😀", "amount": "1250.50"}},
        {"id": "2", "ratio": 1e-07, "tiny": 0.00003, "big": 2**70, "n": -12, "f": 2.5},
        {"id": "3", "text": 'tab\there \x7f del, quote " and \\ slash', "none": None},
        {"id": "4", "b": [True, False, {"z": 1, "a": [0.1, 1e16]}], "a": "ascii only"},
    ]
    batch = [deal(str(i), raw=payload) for i, payload in enumerate(payloads, start=1)]
    as_before = [
        {**row, "raw": json.dumps(row["raw"], sort_keys=True, separators=(",", ":"), default=str)}
        for row in batch
    ]
    with db.begin() as conn:  # the text the previous serializer wrote, stored verbatim
        assert upsert(conn, "deals", as_before).written == len(batch)
    before = table_checksum(db, "deals")
    with db.begin() as conn:
        again = upsert(conn, "deals", batch)
    assert (again.written, again.unchanged) == (0, len(batch))
    assert table_checksum(db, "deals") == before


def test_a_batch_converts_each_value_shape_to_the_column_type() -> None:
    """prepare_batch builds a column straight in its type when its values allow it and falls
    back to Arrow's inference and a cast otherwise: both give the column's type and values."""
    import uuid

    from revtops_kernel.store.upsert import _synced_table, prepare_batch

    deals = _synced_table("deals")
    plain = uuid.UUID(str(record_id("acme", "hubspot", "accounts", "2")))
    eastern = timezone(timedelta(hours=-5))
    rows = [
        deal("1", account_id=record_id("acme", "hubspot", "accounts", "1")),
        deal("2", account_id=plain, created_at=datetime(2026, 1, 1, 23, 0, tzinfo=eastern)),
        deal("3", account_id=None, created_at=datetime(2026, 1, 2, 4, 0)),
        deal("4", account_id=str(plain)),
    ]
    batch = prepare_batch(deals, rows)
    assert batch.schema.field("account_id").type == pa.string()
    assert batch.column("account_id").to_pylist() == [
        str(record_id("acme", "hubspot", "accounts", "1")),
        str(plain),
        None,
        str(plain),
    ]
    created = batch.column("created_at").to_pylist()
    assert batch.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert created[1] == created[2] == datetime(2026, 1, 2, 4, 0, tzinfo=UTC)
    # Decimals convert as they are; integers and floats (rounded to cents) through a cast.
    for amount, stored in [(Decimal("10.50"), "10.50"), (3, "3.00"), (0.1 + 0.2, "0.30")]:
        column = prepare_batch(deals, [deal("5", amount=amount), deal("6", amount=None)])
        assert column.schema.field("amount").type == pa.decimal128(18, 2)
        assert column.column("amount").to_pylist() == [Decimal(stored), None]
    with pytest.raises(UpsertError, match="amount"):
        prepare_batch(deals, [deal("7", amount=Decimal("1.005"))])
    with pytest.raises(UpsertError, match="mixed value types"):
        prepare_batch(deals, [deal("8", amount=Decimal(1)), deal("9", amount=0.5)])


def test_a_first_load_stores_what_a_load_beside_stored_rows_stores(db: Database) -> None:
    # acme has nothing stored (DuckDB inserts the batch as it is); globex has a row already
    # (every row goes through the comparison with stored ones). Same rows either way.
    def batch(org: str) -> list[dict[str, Any]]:
        rows = [
            deal(str(i), organization_id=org, name=f"d{i}", updated_at=T0 + timedelta(hours=i))
            for i in range(40)
        ]
        day, hour = timedelta(days=1), timedelta(hours=1)
        rows += [deal("3", organization_id=org, name="later", updated_at=T0 + 9 * day)]
        rows += [deal("5", organization_id=org, name="older", updated_at=T0 - 9 * day)]
        rows += [deal("7", organization_id=org, name="tie, last", updated_at=T0 + 7 * hour)]
        return rows

    with db.begin() as conn:
        upsert(conn, "deals", [deal("seed", organization_id="globex")])
    results = {}
    for org in ("acme", "globex"):
        with db.begin() as conn:
            results[org] = upsert(conn, "deals", batch(org))
    assert results["acme"] == results["globex"]
    acme = results["acme"]
    assert (acme.received, acme.unique, acme.written) == (43, 40, 40)
    columns = [c.name for c in metadata.tables["deals"].columns if c.name != "organization_id"]
    stored = {
        org: fetch(
            db,
            f"SELECT {', '.join(columns)} FROM deals WHERE organization_id = '{org}' "
            "AND source_id <> 'seed' ORDER BY source_id",
        )
        for org in ("acme", "globex")
    }
    ids = {org: [r.id for r in rows] for org, rows in stored.items()}
    for org in ("acme", "globex"):
        assert ids[org] == [record_id(org, "hubspot", "deals", r.source_id) for r in stored[org]]
    strip = [c for c in columns if c != "id"]
    assert [tuple(getattr(r, c) for c in strip) for r in stored["acme"]] == [
        tuple(getattr(r, c) for c in strip) for r in stored["globex"]
    ]
    names = {r.source_id: r.name for r in stored["acme"]}
    assert (names["3"], names["5"], names["7"]) == ("later", "d5", "tie, last")
