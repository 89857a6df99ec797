"""Real Dagster instance and seeded PostgreSQL fixtures (tests/dagster_support.py)."""

from tests.dagster_support import dagster_instance, dagster_setup

__all__ = ["dagster_instance", "dagster_setup"]
