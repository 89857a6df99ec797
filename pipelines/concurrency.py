"""How many export steps may hit the records database at once.

Every export step (the `export` op and each `daily_account_exports` run) holds a slot of the
`records_database` pool while it works; it claims the slot itself, in its body
(`pipelines/pool_slots.py`), so that a step whose process died gives its slot back. The limit
is instance configuration, not code: `concurrency: pools: default_limit: 2` in `dagster.yaml`
(see deploy/dagster.yaml), or `dagster instance concurrency set records_database N` to change
it for this pool only. Steps beyond the limit wait for a free slot, so a burst of 300 requests
runs two exports at a time instead of 300 queries against one database server.
"""

from __future__ import annotations

RECORDS_DATABASE_POOL = "records_database"
