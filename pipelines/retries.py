"""Retrying an export step when the database hiccups, and only then.

A `RetryPolicy` would retry every error, bad input and bugs included. Instead the step
turns transient database errors into `RetryRequested` with exponential backoff; everything
else fails the step at once. `MAX_RETRIES` attempts after the first, waiting 2, 4, 8 ...
seconds.

Transient means the connection or the server went away, or the server asked for the
transaction to be tried again: a lost connection (server restart, `pg_terminate_backend`,
a network drop, a refused connection while the server restarts), a serialization failure or
a deadlock. The same loss surfaces differently on each layer that reads from PostgreSQL:
psycopg raises `psycopg.errors.AdminShutdown` (or a code-less `OperationalError` when libpq
itself noticed the socket close), SQLAlchemy wraps that in its own `OperationalError`
(`.orig` is psycopg's), and ADBC raises an `adbc_driver_manager.Error` whose class says
little (ADBC 1.8 files every error with a SQLSTATE under `ProgrammingError`) but whose
`sqlstate` is right, or a `pyarrow.ArrowInvalid` carrying only the message. So the decision
follows the error chain and, per error:

1. an error we raise on purpose for bad input is never transient;
2. a SQLSTATE decides when the error has one (`TRANSIENT_SQLSTATE_CLASSES`,
   `TRANSIENT_SQLSTATES`); any other code (a syntax error, a missing table, bad data) is
   the server's definite answer and is not retried;
3. SQLAlchemy's own disconnect detection counts (`DisconnectionError`,
   `connection_invalidated`);
4. without a code, a database error is transient only if its message is one of libpq's
   connection-loss messages (`CONNECTION_LOST_MESSAGES`), and an `OSError` only if it is a
   `ConnectionError` (reset, refused, aborted).
"""

from __future__ import annotations

import re

import adbc_driver_manager
import dagster as dg
import psycopg
import pyarrow as pa
from sqlalchemy import exc as sa_exc

from record_exports.database import DatabaseSettingError
from record_exports.errors import ExportInputError

MAX_RETRIES = 3
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0

# https://www.postgresql.org/docs/current/errcodes-appendix.html
TRANSIENT_SQLSTATE_CLASSES = ("08",)  # connection exception (08000, 08003, 08006, 08001, ...)
TRANSIENT_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend, a fast or smart shutdown
        "57P02",  # crash_shutdown: another server process crashed
        "57P03",  # cannot_connect_now: the server is starting up or in recovery
        "53300",  # too_many_connections: free again when other sessions end
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
    }
)

# libpq's own texts for a lost or refused connection, for errors that carry no SQLSTATE
# (libpq made them itself, or ADBC/pyarrow dropped the code on the way). Each is what libpq
# prints; matched case-insensitively and only on database errors.
CONNECTION_LOST_MESSAGES = (
    "server closed the connection unexpectedly",  # the socket closed without a FATAL
    "terminating connection due to administrator command",  # 57P01's text
    "terminating connection because of crash of another server process",  # 57P02's text
    "the database system is shutting down",  # 57P03's texts
    "the database system is starting up",
    "the database system is in recovery mode",
    "connection refused",  # connect() to a server that is restarting
    "could not connect to server",
    "could not receive data from server",  # a reset or timed-out socket
    "could not send data to server",
    "no connection to the server",
    "connection reset by peer",
    "ssl syscall error: eof detected",
    "lost synchronization with server",
    "too many connections for",  # 53300 at connect: a role's or database's limit
    "too many clients already",  # 53300 at connect: the server's max_connections
)
_CONNECTION_LOST = re.compile("|".join(re.escape(text) for text in CONNECTION_LOST_MESSAGES))

# Errors from the layers between us and PostgreSQL, whose message may be libpq's.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.Error,
    sa_exc.DBAPIError,
    adbc_driver_manager.Error,
    pa.ArrowException,
)
# Raised on purpose for bad input or a bad setting: never worth another attempt, whatever
# the chain below them says.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (ExportInputError, DatabaseSettingError)


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE an error carries: psycopg's and ADBC's `sqlstate`, or a SQLAlchemy
    error's driver error (`orig`)."""
    code = getattr(error, "sqlstate", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(error, sa_exc.DBAPIError) and isinstance(error.orig, BaseException):
        return sqlstate_of(error.orig)
    return None


def is_transient_sqlstate(code: str) -> bool:
    return code in TRANSIENT_SQLSTATES or code.startswith(TRANSIENT_SQLSTATE_CLASSES)


def _verdict(error: BaseException) -> bool | None:
    """True or False when this error alone decides; None to look further down the chain."""
    if isinstance(error, PERMANENT_ERRORS):
        return False
    code = sqlstate_of(error)
    if code is not None:
        return is_transient_sqlstate(code)
    if isinstance(error, sa_exc.DisconnectionError):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, DATABASE_ERRORS) and _CONNECTION_LOST.search(str(error).lower()):
        return True
    if isinstance(error, ConnectionError):
        return True
    return None


def _chain(error: BaseException) -> list[BaseException]:
    """The error, then what caused it (`raise ... from`, the error being handled, a
    SQLAlchemy error's driver error), each once."""
    found: list[BaseException] = []
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        if isinstance(current, sa_exc.DBAPIError) and isinstance(current.orig, BaseException):
            pending.append(current.orig)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return found


def is_transient(error: BaseException) -> bool:
    """A database error worth another attempt: the first error in the chain that decides."""
    for current in _chain(error):
        verdict = _verdict(current)
        if verdict is not None:
            return verdict
    return False


def backoff_seconds(retry_number: int) -> float:
    return min(BASE_DELAY_SECONDS * 2**retry_number, MAX_DELAY_SECONDS)


def can_retry(error: BaseException, retry_number: int) -> bool:
    return is_transient(error) and retry_number < MAX_RETRIES


def retry_request(retry_number: int) -> dg.RetryRequested:
    """The `RetryRequested` to raise (`from` the transient error) for attempt `retry_number`."""
    return dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=backoff_seconds(retry_number))
