"""Ctrl-C and SIGTERM stop a CLI export at once, even while PostgreSQL keeps it waiting.

Python runs a signal's handler (Dagster's, during a run: it stops the step) only between
bytecodes of the main thread. An export blocked in a database call (its query waiting for a
lock, or for the first row of a long sort) is in C code until the server answers, so the
signal would wait with it. So while an export runs, this process's PostgreSQL sessions carry
an application name of their own (libpq's `PGAPPNAME`, read by psycopg and ADBC alike) and a
watcher thread, woken by Python's signal wakeup fd, cancels their queries
(`pg_cancel_backend`) when SIGINT or SIGTERM arrives. The call returns, the handler runs, and
the step stops as it would between batches. Only sessions on the records database are
cancelled (Dagster's own storage may live on the same server). A URL that sets
`application_name` itself, or a `PGAPPNAME` already set, is left alone, and then the signal
waits for the database call.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from record_exports.database import create_engine_for, parse_database_url
from record_exports.errors import first_line

STOP_WATCHING = 0
CANCEL_OWN_QUERIES = sa.text(
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
    "WHERE application_name = :name AND datname = current_database() "
    "AND pid <> pg_backend_pid()"
)


def application_name() -> str:
    return f"record-exports cli {os.getpid()}"


def cancel_queries(url: str, name: str) -> None:
    """Cancel the running queries of the sessions named `name`, from a session of its own."""
    engine = create_engine_for(parse_database_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(CANCEL_OWN_QUERIES, {"name": name})
    finally:
        engine.dispose()


def watch(read_fd: int, url: str, name: str) -> None:
    while True:
        [number] = os.read(read_fd, 1) or bytes([STOP_WATCHING])
        if number == STOP_WATCHING:
            return
        if number in (signal.SIGINT, signal.SIGTERM):
            try:
                cancel_queries(url, name)
            except SQLAlchemyError as error:
                # The signal still stops the export, once the database call returns.
                print(
                    f"note: could not cancel the running query: {first_line(error)}",
                    file=sys.stderr,
                )


@contextmanager
def queries_cancelled_on_interrupt(url: str) -> Iterator[None]:
    """While the block runs in the main thread, SIGINT or SIGTERM also cancels the running
    queries of this process on the PostgreSQL database at `url`. Nothing to do on SQLite
    (a lock there makes an export wait 5 s at most)."""
    if not parse_database_url(url).is_postgresql or "PGAPPNAME" in os.environ:
        yield
        return
    name = application_name()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.environ["PGAPPNAME"] = name
    previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(
        target=watch, args=(read_fd, url, name), name="cancel-queries-on-interrupt", daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        del os.environ["PGAPPNAME"]
        os.write(write_fd, bytes([STOP_WATCHING]))
        watcher.join()
        os.close(write_fd)
        os.close(read_fd)
