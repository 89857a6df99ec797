"""From `RECORDS_DATABASE_URL` to a working SQLAlchemy engine, with errors a user can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from record_exports.errors import first_line
from record_exports.settings import RECORDS_DATABASE_URL

SUPPORTED_BACKENDS = ("postgresql", "sqlite")
MAX_PORT = 65535
_URL_EXAMPLE = (
    "expected e.g. postgresql+psycopg://user:pass@host:5432/db or sqlite:///data/records.db"
)


class DatabaseSettingError(ValueError):
    """The database URL is malformed, unsupported or unreachable; the message names the variable."""


class DatabaseBusyError(RuntimeError):
    """The database is fine but another connection's lock keeps it from being read now
    (a SQLite writer in the middle of a commit or holding an exclusive transaction).
    Not bad input: the same command can succeed once the writer is done."""


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

    def describe(self) -> str:
        """The URL for messages: never the password."""
        return self.url.render_as_string(hide_password=True)

    def adbc_uri(self) -> str:
        """libpq URI for ADBC PostgreSQL, or the SQLite file path."""
        if self.is_postgresql:
            return self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return self.url.database or ":memory:"


def parse_database_url(raw: str, variable: str = RECORDS_DATABASE_URL.variable) -> DatabaseTarget:
    """Validate a URL without connecting. `postgresql://` and `postgres://` mean psycopg 3.

    Every message names `variable` and never quotes the URL itself: it may hold a password.
    """
    if not raw or not raw.strip():
        raise DatabaseSettingError(f"{variable} is empty; set it to a SQLAlchemy URL")
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        # SQLAlchemy's message quotes the whole URL, password included: not repeated here.
        raise DatabaseSettingError(f"{variable} is malformed: not a URL; {_URL_EXAMPLE}") from None
    except ValueError:
        # make_url's only ValueError: a port that is not a number (`int('abc')`).
        raise DatabaseSettingError(
            f"{variable} is malformed: its port is not a number; {_URL_EXAMPLE}"
        ) from None
    if url.port is not None and not 1 <= url.port <= MAX_PORT:
        raise DatabaseSettingError(
            f"{variable} is malformed: port {url.port} is out of range (1-{MAX_PORT}); "
            f"{_URL_EXAMPLE}"
        )
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


# What SQLite's own messages say for SQLITE_BUSY, SQLITE_LOCKED and SQLITE_NOTADB. ADBC's
# SQLite driver reports only the message (in a ProgrammingError), so both drivers' errors
# are told apart by it.
_SQLITE_BUSY_MESSAGES = ("database is locked", "database table is locked")
_SQLITE_NOT_A_DATABASE = "file is not a database"


def require_sqlite_file(
    target: DatabaseTarget, variable: str = RECORDS_DATABASE_URL.variable
) -> None:
    """A SQLite URL naming no file is bad input; opening it would create an empty database."""
    if target.is_postgresql or target.url.database is None:
        return
    path = Path(target.url.database)
    if not path.is_file():
        raise DatabaseSettingError(
            f"{variable} ({target.describe()}) names a SQLite file that does not exist; "
            "check the path, or run `record-exports init-db` to create the database"
        )


def sqlite_error(
    target: DatabaseTarget, message: str, variable: str = RECORDS_DATABASE_URL.variable
) -> DatabaseSettingError | DatabaseBusyError | None:
    """The user-facing error for a SQLite failure to open or read a file, if it is one of
    ours: not a database (bad input) or locked by a writer (try again later)."""
    if target.is_postgresql:
        return None
    where = f"{variable} ({target.describe()})"
    if _SQLITE_NOT_A_DATABASE in message:
        return DatabaseSettingError(f"{where} is not a SQLite database (file is not a database)")
    if any(busy in message for busy in _SQLITE_BUSY_MESSAGES):
        return DatabaseBusyError(
            f"{where} is locked by another connection writing to it (database is locked); "
            "try again when the writer has finished"
        )
    return None


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


def connect_checked(
    raw: str, variable: str = RECORDS_DATABASE_URL.variable, *, create: bool = False
) -> Engine:
    """An engine whose database answered a query, or a `DatabaseSettingError` (a
    `DatabaseBusyError` when a SQLite writer holds a lock past the driver's wait).

    A SQLite file must exist unless `create` (what `init-db` and `seed` ask for). The
    SQLite check reads the schema, which is what finds a file that is not a database and a
    lock that blocks readers; a bare `SELECT 1` touches neither.
    """
    target = parse_database_url(raw, variable)
    if not create:
        require_sqlite_file(target, variable)
    engine = create_engine_for(target)
    probe = "SELECT 1" if target.is_postgresql else "SELECT count(*) FROM sqlite_master"
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(probe))
    except DBAPIError as error:
        engine.dispose()
        reason = first_line(str(error.orig) if error.orig else str(error))
        explained = sqlite_error(target, reason, variable)
        if explained is not None:
            raise explained from None
        raise DatabaseSettingError(
            f"{variable} ({target.describe()}) is unreachable: {reason}"
        ) from None
    return engine
