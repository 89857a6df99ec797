"""A code location whose job runs its steps in processes of their own (Dagster's multiprocess
executor), as a location with EXPORTS_EXECUTOR=celery sends them to workers: what
test_location_runs uses to see a location run go where a non-default executor sends it."""

# No `from __future__ import annotations`: Dagster reads the op's type annotations at runtime.

import os

import dagster as dg


@dg.op
def where(context: dg.OpExecutionContext) -> None:
    context.add_output_metadata({"pid": os.getpid()})


@dg.job(executor_def=dg.multiprocess_executor)
def elsewhere() -> None:
    where()


defs = dg.Definitions(jobs=[elsewhere])
