"""The readers' COPY loop against the real PostgreSQL: every row, the server's errors, stopping,
and the sink that writes, hashes and parses each block."""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from psycopg import sql

from bulk360.engines.local.extract import BlockSink, copy_out

ROWS = 50_000
# Multi-line values and quotes: rows are written exactly as the server sends them.
SERIES = sql.SQL(
    "COPY (SELECT g, 'line ' || g || E'\\n\"quoted\"' FROM generate_series(1, {}) g) "
    "TO STDOUT WITH (FORMAT csv)"
)


def connect(pg_conninfo: dict[str, object]) -> psycopg.Connection[Any]:
    return psycopg.connect(**pg_conninfo)  # type: ignore[arg-type]


def test_every_row_is_written_as_the_server_formats_it(pg_conninfo: dict[str, object]) -> None:
    blocks: list[bytes] = []
    with connect(pg_conninfo) as conn:
        rows = copy_out(conn, SERIES.format(ROWS), blocks.append, block_size=64 << 10)
        expected = io.BytesIO()
        with conn.cursor().copy(SERIES.format(ROWS)) as copy:
            for chunk in copy:
                expected.write(chunk)
        # The connection is usable afterwards, inside the same transaction.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert rows == ROWS
    assert b"".join(blocks) == expected.getvalue()
    assert len(blocks) > 1
    # Every block ends with a whole row: it parses on its own into the same rows.
    parsed = [pl.read_csv(b, has_header=False, infer_schema=False) for b in blocks]
    assert sum(frame.height for frame in parsed) == ROWS


def test_an_error_in_the_middle_of_the_stream_is_the_servers_message(
    pg_conninfo: dict[str, object],
) -> None:
    failing = sql.SQL("COPY (SELECT 1 / (g - {}) FROM generate_series(1, {}) g) TO STDOUT").format(
        ROWS - 10, ROWS
    )
    with connect(pg_conninfo) as conn:
        with pytest.raises(psycopg.Error, match="division by zero"):
            copy_out(conn, failing, lambda block: None)
        assert conn.closed


def test_a_raising_block_callback_stops_the_copy(pg_conninfo: dict[str, object]) -> None:
    class Stop(Exception):
        pass

    seen: list[bytes] = []

    def stop(block: bytes) -> None:
        seen.append(block)
        raise Stop

    with connect(pg_conninfo) as conn:
        with pytest.raises(Stop):
            copy_out(conn, SERIES.format(ROWS), stop, block_size=4096)
        assert conn.closed
    assert len(seen) == 1


def test_the_sink_writes_hashes_and_parses_the_needed_columns(
    pg_conninfo: dict[str, object], tmp_path: Path
) -> None:
    headers = ["id:long", "text:string"]
    path = tmp_path / "series.csv"
    with ThreadPoolExecutor(2) as pool, connect(pg_conninfo) as conn:
        sink = BlockSink(path, headers, ["id:long"], pool)
        copy_out(conn, SERIES.format(ROWS), sink.block, block_size=64 << 10)
        digest, keys = sink.close()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.read_bytes().startswith(b"id:long,text:string\n")
    assert keys is not None
    assert keys.columns == ["id:long"]
    assert keys.schema["id:long"] == pl.Int64
    assert keys.get_column("id:long").to_list() == list(range(1, ROWS + 1))
    whole = pl.read_csv(path, infer_schema=False)
    assert whole.height == ROWS
    assert whole.get_column("text:string")[0] == 'line 1\n"quoted"'
