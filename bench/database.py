"""Benchmark databases: one PostgreSQL database per size, seeded once and reused.

The base URL comes from `BENCH_DATABASE_URL`; a size gets its own database named
`<base>_<size>` (e.g. `record_exports_bench_2m`). A marker table records what was seeded,
so a database seeded to the right size, seed, accounts and generator version is reused as it
is (`data_version`: a change to `seed.py` or `schema.py` rebuilds it).

The SQLite benchmark's files live in `BENCH_SQLITE_DIR` (default `bench/.results`), one
per size (`records_bench_1m.db`), seeded with the same seed and accounts as the PostgreSQL
database of that size, so both hold the same records and their exports the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql

from record_exports import schema, seed
from record_exports.database import DatabaseTarget, create_engine_for, parse_database_url
from record_exports.schema import create_schema
from record_exports.seed import seed_records

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/record_exports_bench"
URL_VARIABLE = "BENCH_DATABASE_URL"
BENCH_ACCOUNTS = 50
BENCH_SEED = 20_261_128
MARKER_TABLE = "bench_seed_marker"
SQLITE_DIR_VARIABLE = "BENCH_SQLITE_DIR"
DEFAULT_SQLITE_DIR = Path(__file__).resolve().parent / ".results"


def size_label(records: int) -> str:
    if records % 1_000_000 == 0:
        return f"{records // 1_000_000}m"
    if records % 1_000 == 0:
        return f"{records // 1_000}k"
    return str(records)


def base_target() -> DatabaseTarget:
    return parse_database_url(os.environ.get(URL_VARIABLE, DEFAULT_URL), URL_VARIABLE)


def target_for(records: int, accounts: int = BENCH_ACCOUNTS) -> DatabaseTarget:
    """`<base>_<size>`, or `<base>_<size>_<accounts>acc` for another number of accounts."""
    base = base_target()
    name = f"{base.url.database}_{size_label(records)}"
    if accounts != BENCH_ACCOUNTS:
        name += f"_{accounts}acc"
    return DatabaseTarget(base.url.set(database=name))


def _create_database_if_missing(target: DatabaseTarget) -> None:
    name = target.url.database
    assert name
    admin = target.url.set(database="postgres")
    dsn = DatabaseTarget(admin).adbc_uri()
    with psycopg.connect(dsn, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def data_version() -> str:
    """What the seeded records depend on besides the seed: the generator's source. A
    database seeded by another version of `record_exports/seed.py` (or schema) is rebuilt."""
    digest = hashlib.sha256()
    for module in (seed, schema):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def _seeded_size(engine: sa.Engine, accounts: int) -> int | None:
    """The records the marker says were seeded, if they match this seed, accounts and
    generator; else None."""
    if not sa.inspect(engine).has_table(MARKER_TABLE):
        return None
    with engine.connect() as connection:
        marker = connection.execute(
            sa.text(f"SELECT records, seed, accounts, version FROM {MARKER_TABLE}")
        ).first()
    if marker is None or tuple(marker[1:]) != (BENCH_SEED, accounts, data_version()):
        return None
    return int(marker[0])


def _seed_and_mark(engine: sa.Engine, records: int, accounts: int) -> None:
    create_schema(engine)
    seed_records(engine, records, accounts, BENCH_SEED)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE {MARKER_TABLE} "
                "(records bigint, seed bigint, accounts int, version text)"
            )
        )
        connection.execute(
            sa.text(f"INSERT INTO {MARKER_TABLE} VALUES (:r, :s, :a, :v)"),
            {"r": records, "s": BENCH_SEED, "a": accounts, "v": data_version()},
        )


def _is_seeded(target: DatabaseTarget, records: int, accounts: int) -> bool:
    engine = create_engine_for(target)
    try:
        return _seeded_size(engine, accounts) == records
    finally:
        engine.dispose()


def ensure_seeded(records: int, log: bool = True, accounts: int = BENCH_ACCOUNTS) -> DatabaseTarget:
    """The database for `records` records over `accounts` accounts, created and seeded when
    it is not yet."""
    target = target_for(records, accounts)
    _create_database_if_missing(target)
    if _is_seeded(target, records, accounts):
        return target
    started = time.monotonic()
    if log:
        print(f"seeding {target.url.database} with {records:,} records ...", flush=True)
    with psycopg.connect(target.adbc_uri(), autocommit=True) as connection:
        # Start from scratch: a half-seeded or differently seeded database is rebuilt.
        for table in (
            MARKER_TABLE,
            "service_remarks",
            "order_remarks",
            "record_changes",
            "bookkeeping_records",
            "accounts",
            "export_requests",
        ):
            connection.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table))
            )
    engine = create_engine_for(target)
    try:
        _seed_and_mark(engine, records, accounts)
    finally:
        engine.dispose()
    with psycopg.connect(target.adbc_uri(), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    if log:
        print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)
    return target


def sqlite_path_for(records: int) -> Path:
    folder = Path(os.environ.get(SQLITE_DIR_VARIABLE) or DEFAULT_SQLITE_DIR)
    return folder / f"records_bench_{size_label(records)}.db"


def ensure_sqlite_seeded(records: int, log: bool = True) -> DatabaseTarget:
    """The SQLite file for `records` records (the same records as `ensure_seeded`'s),
    created and seeded when it is not yet; a file seeded otherwise is rebuilt."""
    path = sqlite_path_for(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = parse_database_url(f"sqlite:///{path}", SQLITE_DIR_VARIABLE)
    if path.exists():
        if _is_seeded(target, records, BENCH_ACCOUNTS):
            return target
        path.unlink()
    started = time.monotonic()
    if log:
        print(f"seeding {path} with {records:,} records ...", flush=True)
    engine = create_engine_for(target)
    try:
        _seed_and_mark(engine, records, BENCH_ACCOUNTS)
    finally:
        engine.dispose()
    if log:
        print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)
    return target
