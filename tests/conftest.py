"""Shared fixtures: throwaway PostgreSQL databases (the production database) and SQLite files.

PostgreSQL must be running: a test run that cannot reach it fails, it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from record_exports.database import DatabaseTarget, create_engine_for, parse_database_url
from record_exports.schema import create_schema
from tests.postgres import ADMIN_URL, admin_connection, create_database, drop_database

# Fixtures of tests that run Dagster for real (a temporary instance, a seeded database).
pytest_plugins = ["tests.dagster_support"]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's base URL; fails loudly when PostgreSQL is down."""
    with admin_connection() as connection:
        connection.execute("SELECT 1")
    return ADMIN_URL.rsplit("/", 1)[0]


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name, url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def dagster_storage_url(postgres_server: str) -> Iterator[str]:
    """A second throwaway database, for a Dagster instance's runs, events and schedules
    (`DAGSTER_PG_URL` of deploy/dagster.yaml), dropped after the test."""
    name, url = create_database(postgres_server)
    try:
        yield url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
    finally:
        drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'records.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on both databases."""
    fixture = "postgres_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def target(database_url: str) -> DatabaseTarget:
    return parse_database_url(database_url)


def _engine_with_schema(target: DatabaseTarget) -> Iterator[Engine]:
    engine = create_engine_for(target)
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(target: DatabaseTarget) -> Iterator[Engine]:
    """An engine on a database (each of the two) with the schema created."""
    yield from _engine_with_schema(target)


@pytest.fixture
def pg_target(postgres_url: str) -> DatabaseTarget:
    return parse_database_url(postgres_url)


@pytest.fixture
def pg_engine(pg_target: DatabaseTarget) -> Iterator[Engine]:
    """An engine on a throwaway PostgreSQL database with the schema created."""
    yield from _engine_with_schema(pg_target)


@pytest.fixture
def dagster_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DAGSTER_HOME and EXPORTS_DIR for a test; returns the exports root."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    exports = tmp_path / "exports"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EXPORTS_DIR", str(exports))
    return exports
