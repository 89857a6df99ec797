"""Settings: one list of variables and defaults, read when asked, filled in by the CLI and the
Makefile from that list."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from record_exports import settings
from record_exports.settings import (
    DAGSTER_HOME,
    EXPORTS_DIR,
    EXPORTS_TIMEZONE,
    RECORDS_DATABASE_URL,
    REPO_ROOT,
    SETTINGS,
    fill_defaults,
    make_assignments,
    resolve_repo_path,
)


def test_defaults_are_those_of_the_contract() -> None:
    assert {setting.variable: setting.default for setting in SETTINGS} == {
        "RECORDS_DATABASE_URL": f"sqlite:///{REPO_ROOT}/data/records.db",
        "EXPORTS_DIR": f"{REPO_ROOT}/exports",
        "EXPORTS_TIMEZONE": "UTC",
        "DAGSTER_HOME": f"{REPO_ROOT}/.dagster_home",
        "EXPORTS_EXECUTOR": "default",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "CELERY_RESULT_BACKEND": "rpc://",
    }


def test_value_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTS_TIMEZONE", "Europe/Berlin")
    assert EXPORTS_TIMEZONE.value() == "Europe/Berlin"
    monkeypatch.setenv("EXPORTS_TIMEZONE", "")
    assert EXPORTS_TIMEZONE.value() == "UTC"
    monkeypatch.delenv("EXPORTS_TIMEZONE")
    assert EXPORTS_TIMEZONE.value() == "UTC"


def test_fill_defaults_keeps_what_is_set() -> None:
    environ = {"EXPORTS_DIR": "/srv/exports", "DAGSTER_HOME": ""}
    fill_defaults(environ)
    assert environ == {
        "EXPORTS_DIR": "/srv/exports",
        "DAGSTER_HOME": DAGSTER_HOME.default,
        "RECORDS_DATABASE_URL": RECORDS_DATABASE_URL.default,
        "EXPORTS_TIMEZONE": "UTC",
        "EXPORTS_EXECUTOR": "default",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "CELERY_RESULT_BACKEND": "rpc://",
    }
    assert make_assignments(environ) == []
    assert make_assignments({"EXPORTS_DIR": "/srv"}) == [
        f"{s.variable}={s.default}" for s in SETTINGS if s is not EXPORTS_DIR
    ]


def test_defaults_hold_no_whitespace() -> None:
    """The Makefile splits the assignments on whitespace."""
    assert not [s.variable for s in SETTINGS if any(char.isspace() for char in s.default)]


def test_relative_paths_are_under_the_repo() -> None:
    assert resolve_repo_path("exports") == REPO_ROOT / "exports"
    assert resolve_repo_path("/tmp/x") == settings.Path("/tmp/x")


def test_the_makefile_exports_the_defaults() -> None:
    """`make` reads the defaults from this module; a variable set in the environment wins."""
    environ = {k: v for k, v in os.environ.items() if k not in {s.variable for s in SETTINGS}}
    environ["EXPORTS_DIR"] = "/srv/exports"
    database = make_database(environ)
    assert database == {
        **{s.variable: s.default for s in SETTINGS},
        "EXPORTS_DIR": "/srv/exports",
    }


def make_database(environ: dict[str, str]) -> dict[str, str]:
    """The variables as `make` sees them: its database of variables, printed without running."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-p", "-n", "-f", "Makefile", "install"],
        cwd=REPO_ROOT,
        env={**environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    wanted = {setting.variable for setting in SETTINGS}
    found = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" = ")
        if name in wanted:
            found[name] = value
    return found


def test_settings_command_lists_every_variable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "record_exports.settings"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert [line.split("=")[0] for line in done.stdout.splitlines()] == [
        s.variable for s in SETTINGS
    ]
