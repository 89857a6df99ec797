"""The records database as a Dagster resource: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        """A checked engine for the length of a `with` block, disposed of after it."""
        engine = connect_checked(self.url)
        try:
            yield engine
        finally:
            engine.dispose()
