"""Retrying an export step when the database hiccups, and only then.

A `RetryPolicy` would retry every error, bad input and bugs included. Instead the step
turns transient database errors (lost connection, server restarting, serialization
failure, deadlock) into `RetryRequested` with exponential backoff; everything else fails
the step at once. `MAX_RETRIES` attempts after the first, waiting 2, 4, 8 ... seconds.
"""

from __future__ import annotations

import adbc_driver_manager
import dagster as dg
import psycopg
from sqlalchemy import exc as sa_exc

MAX_RETRIES = 3
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.DisconnectionError,
    psycopg.OperationalError,
    adbc_driver_manager.OperationalError,
    ConnectionError,
)


def is_transient(error: BaseException) -> bool:
    """A database error worth another attempt; follows `raise ... from` chains."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TRANSIENT_ERRORS):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def backoff_seconds(retry_number: int) -> float:
    return min(BASE_DELAY_SECONDS * 2**retry_number, MAX_DELAY_SECONDS)


def can_retry(error: BaseException, retry_number: int) -> bool:
    return is_transient(error) and retry_number < MAX_RETRIES


def retry_request(retry_number: int) -> dg.RetryRequested:
    """The `RetryRequested` to raise (`from` the transient error) for attempt `retry_number`."""
    return dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=backoff_seconds(retry_number))
