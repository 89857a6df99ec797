"""Dagster resources, one `ConfigurableResource` per module."""
