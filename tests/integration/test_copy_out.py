"""The readers' COPY loop against the real PostgreSQL: every row, the server's errors, stopping."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bulk360.extract import copy_out

ROWS = 50_000
# Multi-line values and quotes: rows are written exactly as the server sends them.
SERIES = sql.SQL(
    "COPY (SELECT g, 'line ' || g || E'\\n\"quoted\"' FROM generate_series(1, {}) g) "
    "TO STDOUT WITH (FORMAT csv)"
)


def connect(pg_conninfo: dict[str, object]) -> psycopg.Connection[Any]:
    return psycopg.connect(**pg_conninfo)  # type: ignore[arg-type]


def test_every_row_is_written_as_the_server_formats_it(pg_conninfo: dict[str, object]) -> None:
    out, reported = io.BytesIO(), []
    with connect(pg_conninfo) as conn:
        rows = copy_out(conn, SERIES.format(ROWS), out, reported.append, every=64 << 10)
        expected = io.BytesIO()
        with conn.cursor().copy(SERIES.format(ROWS)) as copy:
            for chunk in copy:
                expected.write(chunk)
        # The connection is usable afterwards, inside the same transaction.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert rows == ROWS
    assert out.getvalue() == expected.getvalue()
    assert sum(reported) == len(out.getvalue())
    assert len(reported) > 1


def test_an_error_in_the_middle_of_the_stream_is_the_servers_message(
    pg_conninfo: dict[str, object],
) -> None:
    failing = sql.SQL("COPY (SELECT 1 / (g - {}) FROM generate_series(1, {}) g) TO STDOUT").format(
        ROWS - 10, ROWS
    )
    with connect(pg_conninfo) as conn:
        with pytest.raises(psycopg.Error, match="division by zero"):
            copy_out(conn, failing, io.BytesIO(), lambda nbytes: None)
        assert conn.closed


def test_a_raising_progress_callback_stops_the_copy(pg_conninfo: dict[str, object]) -> None:
    class Stop(Exception):
        pass

    def stop(nbytes: int) -> None:
        raise Stop

    out = io.BytesIO()
    with connect(pg_conninfo) as conn:
        with pytest.raises(Stop):
            copy_out(conn, SERIES.format(ROWS), out, stop, every=4096)
        assert conn.closed
    assert 4096 <= len(out.getvalue()) < 64 << 10
