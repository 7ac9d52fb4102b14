"""Secondary indexes the models retired: ``revtops db upgrade`` drops them from an existing
PostgreSQL store (each costs every write an index entry), and only them."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import RETIRED_INDEXES, metadata
from revtops_kernel.store.scratch import scratch_postgres


def test_no_model_defines_a_retired_index() -> None:
    """A name both retired and defined would be dropped and created again at every upgrade."""
    defined = {index.name for table in metadata.sorted_tables for index in table.indexes}
    assert RETIRED_INDEXES
    assert not defined & set(RETIRED_INDEXES)


@pytest.mark.postgres
def test_upgrade_drops_the_retired_indexes_and_keeps_one_added_by_hand(postgres_url: str) -> None:
    with scratch_postgres(make_url(postgres_url).set(database="postgres"), prefix="p_idx") as url:
        db = Database(url)
        try:
            upgrade(db)
            with db.begin() as conn:
                # As a store of the former schema has them (their former definitions).
                conn.execute(
                    text(
                        "CREATE INDEX ix_activity_participants_live_activity "
                        "ON activity_participants (organization_id, activity_id) "
                        "INCLUDE (contact_id, account_id) WHERE deleted_at IS NULL"
                    )
                )
                conn.execute(
                    text(
                        "CREATE INDEX ix_activity_participants_live_external "
                        "ON activity_participants (organization_id, activity_id) "
                        "INCLUDE (contact_id, account_id) WHERE deleted_at IS NULL "
                        "AND NOT COALESCE(is_internal, false) "
                        "AND (contact_id IS NOT NULL OR account_id IS NOT NULL)"
                    )
                )
                conn.execute(text("CREATE INDEX ix_by_hand ON activities (channel)"))
            report = upgrade(db)
            # Only the retired indexes the store still has are dropped (a fresh store never had
            # the retired indexes of this schema's own tables).
            former = {
                "ix_activity_participants_live_activity",
                "ix_activity_participants_live_external",
            }
            assert former <= set(RETIRED_INDEXES)
            assert report.dropped_indexes == sorted(former)
            assert report.changed
            with db.connect() as conn:
                present = set(
                    conn.execute(
                        text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
                    ).scalars()
                )
            assert not present & set(RETIRED_INDEXES)
            assert {
                "ix_by_hand",
                "ix_activity_participants_live_resolved",
                "ix_activities_organization_id_occurred_at",  # defined again: kept
            } <= present
            assert upgrade(db).dropped_indexes == []
            # An index the models define and the store lacks is created, and said so (an
            # upgrade that only created indexes used to print "schema already up to date").
            with db.begin() as conn:
                conn.execute(text("DROP INDEX ix_activity_participants_live_resolved"))
            report = upgrade(db)
            assert report.created_indexes == ["ix_activity_participants_live_resolved"]
            assert report.changed
            again = upgrade(db)
            assert again.created_indexes == [] and not again.changed
        finally:
            db.dispose()
