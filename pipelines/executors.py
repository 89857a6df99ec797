"""Which engine runs the steps of every job: the run's own process, or Celery workers.

`EXPORTS_EXECUTOR` is read when the definitions load, like `EXPORTS_TIMEZONE`:
unset (or `default`) runs each step in the run's own process (Dagster's in-process
executor), so `make dev`, `make demo`, the CLI and the tests run steps on the machine that
runs the job;
`celery` hands every step of every job (`export_records`, the daily asset's runs,
backfills) to `dagster-celery` workers through a broker. Production sets it in the
daemon's environment (deploy/README.md); no code changes between the two.

The executor's config names environment variables, not values: the broker URL (which
may hold a password) is read by the run's own process when it starts, and only the
variable's name is ever shown in the UI. The same config, as YAML, is what workers are
started with (deploy/celery.yaml); a test keeps the two equal.

The `records_database` pool still holds across workers: an export step claims its slot
in its own body, on whichever worker runs it, in the instance's database that every worker
shares (`pipelines/pool_slots.py`), so no more steps than the pool's limit read the records
database anywhere, whatever the number of workers. A step beyond the limit waits asleep in
its worker; a worker that died gives its step's slot back (a waiting step takes it).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_celery import celery_executor

from record_exports.settings import CELERY_BROKER_URL, CELERY_RESULT_BACKEND, EXPORTS_EXECUTOR

EXECUTOR_VARIABLE = EXPORTS_EXECUTOR.variable
BROKER_URL_VARIABLE = CELERY_BROKER_URL.variable
RESULT_BACKEND_VARIABLE = CELERY_RESULT_BACKEND.variable

DEFAULT_EXECUTOR = "default"
CELERY_EXECUTOR = "celery"

CELERY_APP_SETTINGS: dict[str, Any] = {
    # Acknowledge a step's message when the step ends, not when a worker takes it: if the
    # worker dies mid-step (machine lost, process group killed), the broker hands the
    # message to another worker, which runs the step again from the start.
    "task_acks_late": True,
    # A worker reserves no message beyond the steps it is running, so an idle worker
    # takes the next step instead of a busy one holding it.
    "worker_prefetch_multiplier": 1,
}


def celery_executor_config() -> dict[str, Any]:
    """The Celery executor's config: the broker and result backend as environment
    variables, resolved where the executor or a worker starts."""
    return {
        "broker": {"env": BROKER_URL_VARIABLE},
        "backend": {"env": RESULT_BACKEND_VARIABLE},
        "config_source": dict(CELERY_APP_SETTINGS),
    }


def executor_named(name: str) -> dg.ExecutorDefinition:
    """The executor for a value of `EXPORTS_EXECUTOR`.

    `default` runs the steps in the run's own process: every job here is one step, so a
    second process per run (Dagster's multiprocess default) would only add 2-4 s and about
    200 MB, which daily runs pay every night."""
    if name in ("", DEFAULT_EXECUTOR):
        return dg.in_process_executor
    if name == CELERY_EXECUTOR:
        return celery_executor.configured(celery_executor_config())
    raise ValueError(
        f"{EXECUTOR_VARIABLE} must be {DEFAULT_EXECUTOR!r} (or unset) or "
        f"{CELERY_EXECUTOR!r}, not {name!r}"
    )


def configured_executor() -> dg.ExecutorDefinition:
    """The executor chosen by the environment when the definitions load."""
    return executor_named(EXPORTS_EXECUTOR.value().strip())
