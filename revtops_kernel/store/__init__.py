"""The store: the common schema on PostgreSQL or DuckDB, bulk upsert, read-only queries."""

from revtops_kernel.store.database import Backend, Database
from revtops_kernel.store.migrate import UpgradeReport, upgrade

__all__ = ["Backend", "Database", "UpgradeReport", "upgrade"]
