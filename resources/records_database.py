"""The records database as a Dagster resource: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from record_exports.database import DatabaseTarget, create_engine_for, parse_database_url


class RecordsDatabase(dg.ConfigurableResource):
    """The records database (RECORDS_DATABASE_URL): SQLite or PostgreSQL."""

    # The class docstring is this resource's description in the Launchpad; for readers of
    # the code: `url` is wired with `dg.EnvVar("RECORDS_DATABASE_URL")`, so the value, which
    # may hold a password, is read at launch and never shown in the UI or logs. The engine is
    # created on first use and disposed when Dagster tears the resource down at the end of the
    # run or tick, so a request run (its status write-backs and the account lookup) opens one
    # engine. A sensor called directly must be called inside
    # `with build_sensor_context(...) as context:` for that teardown to happen.

    url: str = Field(
        description="For operators: SQLAlchemy URL of the records database, from "
        "RECORDS_DATABASE_URL (read when a run starts, never shown)."
    )
    _engine: Engine | None = PrivateAttr(default=None)

    def target(self) -> DatabaseTarget:
        return parse_database_url(self.url)

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        """The resource's engine for a `with` block; it stays open until teardown.

        It is not checked with a query first: an unreachable server raises the driver's
        own error where the engine is used, which the retry logic recognises as transient.
        """
        if self._engine is None:
            self._engine = create_engine_for(self.target())
        yield self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
