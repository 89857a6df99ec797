"""The records database as a Dagster resource: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import dagster as dg
from sqlalchemy.engine import Engine

from record_exports.database import (
    DatabaseTarget,
    connect_checked,
    parse_database_url,
)


class RecordsDatabase(dg.ConfigurableResource):
    """Where records live. Wire `url` with `dg.EnvVar("RECORDS_DATABASE_URL")` so the value,
    which may hold a password, is read at launch and never shown in the UI or logs."""

    url: str

    def target(self) -> DatabaseTarget:
        return parse_database_url(self.url)

    def engine(self) -> Engine:
        """A checked engine; the caller disposes of it."""
        return connect_checked(self.url)
