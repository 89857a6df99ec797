"""How PostgreSQL should run an export's query: session settings chosen per read.

Most of a large export's time on PostgreSQL is the server's: scanning the table, sorting by
`(updated_at, id)` and encoding rows for COPY. One parallel worker scans and sorts part of
the table while the leader does the rest, then the leader merges the two sorted streams
(Gather Merge) and sends the rows in export order over the one connection.

Measured on 2M records with the server on the same 2-core host (bench/README.md):
- one worker beats two (ratio to COPY 0.85 vs 1.01): the client needs a core too;
- one connection with the server's own merge beats two connections reading disjoint key
  ranges with the later one spooled (0.85 vs 1.09): each range scanned the whole table, and
  the spool cost a write and a read;
- JIT compiling costs more than it saves on these simple expressions;
- walking the `(updated_at, id)` index through a heap in random order (the planner's
  default) takes twice as long as a sort. When the heap is nearly in `updated_at` order
  the index walk reads it in order, so the planner keeps its choice.
A small selection gets no parallel plan anyway: the planner weighs the worker's start-up.
"""

from __future__ import annotations

from typing import Any

PARALLEL_WORKERS = 1
# Above this |correlation| of `updated_at` with the heap order, an index scan on
# (updated_at, id) reads the heap nearly in order and may serve the ordering; below it each
# index entry is a random heap access, much slower than a sort.
INDEX_ORDER_CORRELATION = 0.9

BASE_SETTINGS: dict[str, str] = {
    "jit": "off",
    "max_parallel_workers_per_gather": str(PARALLEL_WORKERS),
}
NO_INDEX_WALK: dict[str, str] = {"enable_indexscan": "off", "enable_indexonlyscan": "off"}

# The table as the session's search_path finds it, like the export query itself.
_CORRELATION_SQL = """
SELECT s.correlation::float8 AS correlation
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_stats AS s
  ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = 'updated_at'
WHERE c.oid = 'bookkeeping_records'::regclass
"""


def settings_for(correlation: float | None) -> dict[str, str]:
    """The session settings for reading a table whose `updated_at` has this correlation.

    No statistics yet (`None`: never analyzed) counts as random order, the usual case for
    a table whose rows are updated after they are inserted.
    """
    if correlation is None or abs(correlation) < INDEX_ORDER_CORRELATION:
        return {**BASE_SETTINGS, **NO_INDEX_WALK}
    return dict(BASE_SETTINGS)


def read_settings(cursor: Any) -> dict[str, str]:
    """`settings_for` the records table, asked of the server on an open ADBC cursor."""
    cursor.execute(_CORRELATION_SQL)
    row = cursor.fetchone()
    return settings_for(None if row is None else row[0])
