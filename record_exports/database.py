"""From `RECORDS_DATABASE_URL` to a working SQLAlchemy engine, with errors a user can act on."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from record_exports.errors import first_line
from record_exports.settings import RECORDS_DATABASE_URL

SUPPORTED_BACKENDS = ("postgresql", "sqlite")


class DatabaseSettingError(ValueError):
    """The database URL is malformed, unsupported or unreachable; the message names the variable."""


@dataclass(frozen=True)
class DatabaseTarget:
    """A validated database URL: the SQLAlchemy form and the plain form the ADBC drivers take."""

    url: URL

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def is_postgresql(self) -> bool:
        return self.backend == "postgresql"

    def adbc_uri(self) -> str:
        """libpq URI for ADBC PostgreSQL, or the SQLite file path."""
        if self.is_postgresql:
            return self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return self.url.database or ":memory:"


def parse_database_url(raw: str, variable: str = RECORDS_DATABASE_URL.variable) -> DatabaseTarget:
    """Validate a URL without connecting. `postgresql://` and `postgres://` mean psycopg 3."""
    if not raw or not raw.strip():
        raise DatabaseSettingError(f"{variable} is empty; set it to a SQLAlchemy URL")
    try:
        url = make_url(raw.strip())
    except ArgumentError as error:
        raise DatabaseSettingError(
            f"{variable} is malformed ({error}); expected e.g. "
            "postgresql+psycopg://user:pass@host:5432/db or sqlite:///data/records.db"
        ) from None
    backend = url.get_backend_name()
    if backend == "postgres":
        url = url.set(drivername="postgresql+psycopg")
        backend = "postgresql"
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseSettingError(
            f"{variable} names an unsupported database {backend!r}; use postgresql or sqlite"
        )
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        if not url.database:
            raise DatabaseSettingError(f"{variable} names no database; add /<dbname> to the URL")
    elif not url.database or url.database == ":memory:":
        raise DatabaseSettingError(
            f"{variable} must name a SQLite file (sqlite:///path/to/records.db), not memory"
        )
    return DatabaseTarget(url=url)


def create_engine_for(target: DatabaseTarget) -> Engine:
    if target.is_postgresql:
        return sa.create_engine(target.url, pool_pre_ping=True)
    return sa.create_engine(target.url)


def require_records_schema(engine: Engine, variable: str = RECORDS_DATABASE_URL.variable) -> None:
    """A database without the records tables is a setting error, not a failed export."""
    if not sa.inspect(engine).has_table("bookkeeping_records"):
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseSettingError(
            f"{variable} ({where}) has no records tables; run `record-exports init-db` first"
        )


def connect_checked(raw: str, variable: str = RECORDS_DATABASE_URL.variable) -> Engine:
    """An engine whose database answered a trivial query, or a `DatabaseSettingError`."""
    target = parse_database_url(raw, variable)
    engine = create_engine_for(target)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except DBAPIError as error:
        engine.dispose()
        reason = first_line(str(error.orig) if error.orig else str(error))
        where = target.url.render_as_string(hide_password=True)
        raise DatabaseSettingError(f"{variable} ({where}) is unreachable: {reason}") from None
    return engine
