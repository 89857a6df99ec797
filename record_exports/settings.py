"""Settings read from the environment when asked for, never at import time."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

DATABASE_URL_VARIABLE = "RECORDS_DATABASE_URL"
EXPORTS_DIR_VARIABLE = "EXPORTS_DIR"
TIMEZONE_VARIABLE = "EXPORTS_TIMEZONE"


def default_database_url() -> str:
    """The embedded SQLite database, relative to the repo root rather than the cwd."""
    return f"sqlite:///{REPO_ROOT / 'data' / 'records.db'}"


def records_database_url() -> str:
    return os.environ.get(DATABASE_URL_VARIABLE) or default_database_url()


def resolve_repo_path(value: str) -> Path:
    """A relative setting is taken relative to the repo root, so the CLI works from any cwd."""
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def exports_dir() -> Path:
    return resolve_repo_path(os.environ.get(EXPORTS_DIR_VARIABLE) or "exports")


def exports_timezone() -> str:
    return os.environ.get(TIMEZONE_VARIABLE) or "UTC"
