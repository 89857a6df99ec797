"""Dagster jobs, schedules, sensors, the `Definitions` and the command line."""
