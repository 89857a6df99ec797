"""The SQLite reference: the `sqlite3` command line printing the export as CSV.

    python -m bench.reference_sqlite DB OUT [default|sorted]

The same selection as `reference_sql.SQL` (money fields computed by SQLite, same columns,
same order), in `sqlite3`'s `.mode csv` with a header. Two plans, as for `psql`:
`default` is what SQLite's planner picks (a walk of the `(updated_at, id)` index);
`sorted` is the plan the engine uses (`+updated_at`: a scan and a sort, with
`PRAGMA threads = 2` for the sorter). The bench takes the better of the two as the bar.

Its CSV quotes more than ours (any field with a space or a non-ASCII byte) and so is
not byte-identical; the bench compares bytes with the PostgreSQL export instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.reference_sql import SQL

# SQLite stores the id as text already and has no `::` casts.
SQLITE_SQL = SQL.replace("r.id::text AS id", "r.id AS id")
SORTED_SQL = SQLITE_SQL.replace("ORDER BY r.updated_at DESC", "ORDER BY +r.updated_at DESC")
assert "::" not in SQLITE_SQL and SORTED_SQL != SQLITE_SQL
PLANS = ("default", "sorted")


def command(database: Path, plan: str) -> list[str]:
    """The `sqlite3` command line printing the selection as CSV to stdout."""
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {PLANS}")
    executable = shutil.which("sqlite3")
    if executable is None:
        raise RuntimeError("the SQLite benchmark needs the sqlite3 command line (apt: sqlite3)")
    args = [executable, "-bail", "-batch", "-csv", "-header"]
    if plan == "sorted":
        # The pragma prints its value; send that line nowhere.
        args += ["-cmd", ".output /dev/null", "-cmd", "PRAGMA threads = 2", "-cmd", ".output"]
    sql = SORTED_SQL if plan == "sorted" else SQLITE_SQL
    return [*args, str(database), " ".join(sql.split())]


def main(argv: list[str]) -> None:
    database, out = Path(argv[0]), Path(argv[1])
    plan = argv[2] if len(argv) > 2 else "default"
    args = command(database, plan)
    with out.open("wb") as handle:
        os.dup2(handle.fileno(), sys.stdout.fileno())
    os.execv(args[0], args)


if __name__ == "__main__":
    main(sys.argv[1:])
