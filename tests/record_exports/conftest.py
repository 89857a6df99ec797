"""Records for the engine's tests against PostgreSQL's own answers."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from record_exports.database import DatabaseTarget
from tests.record_exports.exporting import populate


@pytest.fixture
def pg_records(pg_engine: Engine, pg_target: DatabaseTarget) -> DatabaseTarget:
    """A PostgreSQL database holding `populate`'s records."""
    populate(pg_engine)
    return pg_target
