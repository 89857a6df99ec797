"""The export engine: records schema, seeding, and the Polars export path.

Nothing in this package imports Dagster, so the CLI, the job and the assets all
call the same functions.
"""
