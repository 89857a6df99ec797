"""Database settings: a user's URL becomes an engine or a one-line error naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from record_exports.database import (
    DatabaseBusyError,
    DatabaseSettingError,
    connect_checked,
    parse_database_url,
)
from record_exports.schema import create_schema
from tests.sqlite_lock import sqlite_write_lock


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("", "is empty"),
        ("not a url", "malformed"),
        ("mysql://root@localhost/db", "unsupported database 'mysql'"),
        ("postgresql://postgres@127.0.0.1:5432", "names no database"),
        ("sqlite://", "SQLite file"),
        ("postgresql+psycopg://u:hunter2@h:abc/db", "malformed: its port is not a number"),
        ("postgresql://u:hunter2@h:99999/db", "malformed: port 99999 is out of range (1-65535)"),
        ("postgresql://u:hunter2@h:0/db", "malformed: port 0 is out of range"),
        ("postgresql+psycopg//u:hunter2@h/db", "malformed: not a URL"),
    ],
)
def test_malformed_urls(url: str, hint: str) -> None:
    with pytest.raises(DatabaseSettingError) as caught:
        parse_database_url(url)
    message = str(caught.value)
    assert message.startswith("RECORDS_DATABASE_URL")
    assert hint in message
    assert "\n" not in message and "hunter2" not in message


def test_postgres_urls_use_psycopg_3() -> None:
    for raw in ("postgresql://u:secret@h:5432/db", "postgres://u:secret@h/db"):
        target = parse_database_url(raw)
        assert target.url.drivername == "postgresql+psycopg"
        assert target.adbc_uri().startswith("postgresql://u:secret@h")


def test_unreachable_database_names_variable_without_password() -> None:
    with pytest.raises(DatabaseSettingError) as caught:
        connect_checked("postgresql://user:hunter2@127.0.0.1:1/db")
    message = str(caught.value)
    assert "RECORDS_DATABASE_URL" in message and "unreachable" in message
    assert "hunter2" not in message and "\n" not in message


def test_reachable_database(postgres_url: str, sqlite_url: str) -> None:
    connect_checked(postgres_url).dispose()
    connect_checked(sqlite_url, create=True).dispose()
    connect_checked(sqlite_url).dispose()


def test_missing_sqlite_file_is_named_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "records.db"
    for _folder_exists in (False, True):
        with pytest.raises(DatabaseSettingError) as caught:
            connect_checked(f"sqlite:///{path}")
        message = str(caught.value)
        assert message.startswith("RECORDS_DATABASE_URL") and "\n" not in message
        assert "does not exist" in message and "init-db" in message
        assert not path.exists()
        path.parent.mkdir(exist_ok=True)


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    path.write_bytes(b"id,item_name\n1,not a database\n" * 100)
    with pytest.raises(DatabaseSettingError) as caught:
        connect_checked(f"sqlite:///{path}")
    message = str(caught.value)
    assert message.startswith("RECORDS_DATABASE_URL") and "\n" not in message
    assert "is not a SQLite database" in message
    assert path.read_bytes() == b"id,item_name\n1,not a database\n" * 100


def test_sqlite_locked_by_a_writer_is_busy_not_bad_input(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    create_schema(engine)
    engine.dispose()
    path = Path(parse_database_url(sqlite_url).url.database or "")
    with sqlite_write_lock(path), pytest.raises(DatabaseBusyError) as caught:
        connect_checked(sqlite_url)
    message = str(caught.value)
    assert message.startswith("RECORDS_DATABASE_URL") and "\n" not in message
    assert "locked" in message
    connect_checked(sqlite_url).dispose()
