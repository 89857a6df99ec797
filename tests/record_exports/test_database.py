"""Database settings: a user's URL becomes an engine or a one-line error naming the variable."""

from __future__ import annotations

import pytest

from record_exports.database import DatabaseSettingError, connect_checked, parse_database_url


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("", "is empty"),
        ("not a url", "malformed"),
        ("mysql://root@localhost/db", "unsupported database 'mysql'"),
        ("postgresql://postgres@127.0.0.1:5432", "names no database"),
        ("sqlite://", "SQLite file"),
    ],
)
def test_malformed_urls(url: str, hint: str) -> None:
    with pytest.raises(DatabaseSettingError) as caught:
        parse_database_url(url)
    message = str(caught.value)
    assert message.startswith("RECORDS_DATABASE_URL")
    assert hint in message
    assert "\n" not in message


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
    for url in (postgres_url, sqlite_url):
        connect_checked(url).dispose()
