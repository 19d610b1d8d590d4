"""The follower's state store, two embedded candidates measured side by side: SQLite (the standard
library's ``sqlite3``) and DuckDB, on the operations a follow window makes.

    python -m benchmarks.state_store --rows 5000000

A table shaped like a followed table (its replica identity as text, a follow id, a node key and
two join columns) is filled with ``--rows`` rows, indexed by identity, id and each join column;
then the file is opened again in a new process's way (a new connection) and a window's work is
timed: the rows of 10,000 changed identities, the rows of 10,000 join keys, and 10,000 upserts
with 1,000 deletes in one transaction. Each figure is the median of ``--repeat`` runs. Writes
``state_store.json`` and ``state_store.md`` into ``benchmarks/results``.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer

from benchmarks.bench import ROOT, machine

_WINDOW = 10_000


def _columns(rows: int, offset: int = 0) -> dict[str, list[Any]]:
    ids = list(range(offset, offset + rows))
    return {
        "ident": [str(i) for i in ids],
        "nid": ids,
        "event_id": ids,
        "account_id": [i % 100_003 for i in ids],
        "media_id": [i % 5_003 for i in ids],
    }


def _chunks(rows: int, size: int = 500_000) -> Iterator[dict[str, list[Any]]]:
    for offset in range(0, rows, size):
        yield _columns(min(size, rows - offset), offset)


def _timed(work: Callable[[], object], repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


class SQLiteStore:
    name = "SQLite " + sqlite3.sqlite_version

    def __init__(self, folder: Path) -> None:
        self.path = folder / "state.sqlite"

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def fill(self, rows: int) -> None:
        conn = self.connect()
        conn.execute(
            "CREATE TABLE t (ident TEXT PRIMARY KEY, nid INTEGER, event_id INTEGER,"
            " account_id INTEGER, media_id INTEGER) WITHOUT ROWID"
        )
        conn.execute("BEGIN")
        for chunk in _chunks(rows):
            conn.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?)", zip(*chunk.values(), strict=True)
            )
        for column in ("nid", "account_id", "media_id"):
            conn.execute(f"CREATE INDEX t_{column} ON t ({column})")
        conn.execute("COMMIT")
        conn.close()

    def open_and_count(self) -> int:
        conn = self.connect()
        found = conn.execute("SELECT nid FROM t WHERE ident = '1'").fetchone()
        conn.close()
        return int(found[0])

    def by(self, column: str, values: list[Any]) -> int:
        conn = self.connect()
        found = conn.execute(
            f"SELECT * FROM t WHERE {column} IN (SELECT value FROM json_each(?))",
            [json.dumps(values)],
        ).fetchall()
        conn.close()
        return len(found)

    def write(self, upserts: dict[str, list[Any]], deletes: list[str]) -> None:
        conn = self.connect()
        conn.execute("BEGIN")
        conn.execute(
            "DELETE FROM t WHERE ident IN (SELECT value FROM json_each(?))", [json.dumps(deletes)]
        )
        conn.executemany(
            "INSERT OR REPLACE INTO t VALUES (?, ?, ?, ?, ?)", zip(*upserts.values(), strict=True)
        )
        conn.execute("COMMIT")
        conn.close()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob("state.sqlite*"))


class DuckDBStore:
    def __init__(self, folder: Path) -> None:
        import duckdb

        self.duckdb = duckdb
        self.name = "DuckDB " + duckdb.__version__
        self.path = folder / "state.duckdb"

    def connect(self) -> Any:
        return self.duckdb.connect(str(self.path))

    def fill(self, rows: int) -> None:
        conn = self.connect()
        conn.execute(
            "CREATE TABLE t (ident VARCHAR PRIMARY KEY, nid BIGINT, event_id BIGINT,"
            " account_id BIGINT, media_id BIGINT)"
        )
        for chunk in _chunks(rows):
            frame = pa.table(chunk)  # noqa: F841 (read by name by DuckDB's replacement scan)
            conn.execute("INSERT INTO t SELECT * FROM frame")
        for column in ("nid", "account_id", "media_id"):
            conn.execute(f"CREATE INDEX t_{column} ON t ({column})")
        conn.close()

    def open_and_count(self) -> int:
        conn = self.connect()
        found = conn.execute("SELECT nid FROM t WHERE ident = '1'").fetchone()
        conn.close()
        return int(found[0])

    def by(self, column: str, values: list[Any]) -> int:
        conn = self.connect()
        found = conn.execute(
            f"SELECT * FROM t WHERE {column} IN (SELECT unnest(?))", [values]
        ).fetchall()
        conn.close()
        return len(found)

    def write(self, upserts: dict[str, list[Any]], deletes: list[str]) -> None:
        conn = self.connect()
        conn.execute("BEGIN")
        conn.execute("DELETE FROM t WHERE ident IN (SELECT unnest(?))", [deletes])
        frame = pa.table(upserts)  # noqa: F841
        conn.execute("INSERT OR REPLACE INTO t SELECT * FROM frame")
        conn.execute("COMMIT")
        conn.close()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob("state.duckdb*"))


def measure(store: Any, rows: int, repeat: int) -> dict[str, Any]:
    rng = random.Random(360)
    started = time.perf_counter()
    store.fill(rows)
    filled = time.perf_counter() - started
    identities = [str(rng.randrange(rows)) for _ in range(_WINDOW)]
    accounts = [rng.randrange(100_003) for _ in range(_WINDOW // 100)]
    upserts = _columns(_WINDOW, rng.randrange(rows - _WINDOW))
    upserts["media_id"] = [m + 1 for m in upserts["media_id"]]
    deletes = [str(rng.randrange(rows)) for _ in range(_WINDOW // 10)]
    return {
        "store": store.name,
        "fill_seconds": round(filled, 2),
        "fill_rows_per_second": round(rows / filled),
        "bytes": store.size(),
        "open_seconds": round(_timed(store.open_and_count, repeat), 4),
        "by_identity_seconds": round(_timed(lambda: store.by("ident", identities), repeat), 4),
        "by_join_key_seconds": round(_timed(lambda: store.by("account_id", accounts), repeat), 4),
        "join_key_rows": store.by("account_id", accounts),
        "write_seconds": round(_timed(lambda: store.write(upserts, deletes), repeat), 4),
    }


def main(
    rows: Annotated[int, typer.Option(min=_WINDOW * 2)] = 5_000_000,
    repeat: Annotated[int, typer.Option(min=1)] = 5,
    output: Annotated[Path, typer.Option()] = ROOT / "benchmarks" / "results",
) -> None:
    results = []
    for kind in (SQLiteStore, DuckDBStore):
        folder = Path(tempfile.mkdtemp(prefix="bulk360-store-"))
        try:
            results.append(measure(kind(folder), rows, repeat))
            print(json.dumps(results[-1]))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    (output / "state_store.json").write_text(
        json.dumps({"machine": machine(), "rows": rows, "results": results}, indent=2)
    )
    lines = [
        "# The follower's state store: SQLite and DuckDB side by side",
        "",
        f"{rows:,} rows (identity, id, key, two join columns; indexed by identity, id and each join"
        f" column); a window of {_WINDOW:,} changes. Medians of {repeat} runs, each on a new"
        " connection.",
        "",
        "| store | fill s | rows/s | file MB | open s | 10,000 identities s | 100 join keys s"
        " (rows) | 10,000 upserts + 1,000 deletes s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['store']} | {r['fill_seconds']:.1f} | {r['fill_rows_per_second']:,} "
            f"| {r['bytes'] / 1e6:,.0f} | {r['open_seconds']:.4f} | {r['by_identity_seconds']:.4f} "
            f"| {r['by_join_key_seconds']:.4f} ({r['join_key_rows']:,}) | {r['write_seconds']:.4f} |"
        )
    (output / "state_store.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {output / 'state_store.md'}")


if __name__ == "__main__":
    app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)
    app.command()(main)
    app()
