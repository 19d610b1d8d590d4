"""Run history: the runs of ``etl_run_logs`` and what they say about the graph."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from bulk360.control.database import connect_control
from bulk360.control.runlog import reconcile
from bulk360.errors import ConfigError, NoSuchRun
from bulk360.settings import Settings

__all__ = [
    "failed_since",
    "find_run",
    "follow_sessions_since",
    "graph_counts",
    "graph_run",
    "list_runs",
    "show_run",
]


def failed_since(settings: Settings, run_id: int, mode: str) -> list[int]:
    """The failed runs of ``mode`` newer than ``run_id``."""
    with connect_control(settings) as conn:
        rows = conn.execute(
            "SELECT run_id FROM etl_run_logs WHERE status = 'failed' AND mode = %s"
            " AND run_id > %s ORDER BY run_id",
            [mode, run_id],
        ).fetchall()
    return [row[0] for row in rows]


def follow_sessions_since(settings: Settings, run_id: int) -> list[int]:
    """The follow sessions newer than ``run_id`` that may have written into the graph (every
    one but those that failed before applying anything)."""
    with connect_control(settings) as conn:
        rows = conn.execute(
            "SELECT run_id FROM etl_run_logs WHERE mode = 'follow' AND run_id > %s"
            " AND NOT (status = 'failed' AND coalesce(rows_read, 0) = 0) ORDER BY run_id",
            [run_id],
        ).fetchall()
    return [row[0] for row in rows]


def list_runs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs, newest first."""
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        return cur.execute(
            "SELECT * FROM etl_run_logs ORDER BY run_id DESC LIMIT %s", [limit]
        ).fetchall()


def show_run(settings: Settings, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run and its ``etl_table_logs`` rows."""
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        run_row = cur.execute("SELECT * FROM etl_run_logs WHERE run_id = %s", [run_id]).fetchone()
        if run_row is None:
            raise NoSuchRun(f"no run {run_id} in etl_run_logs")
        tables = cur.execute(
            "SELECT * FROM etl_table_logs WHERE run_id = %s ORDER BY log_id", [run_id]
        ).fetchall()
    return run_row, tables


def find_run(settings: Settings, run_id: int | None, status: str) -> dict[str, Any]:
    """Run ``run_id`` (or the newest run with ``status``); a ConfigError if there is none."""
    with connect_control(settings) as conn:
        reconcile(conn)
        cur = conn.cursor(row_factory=dict_row)
        if run_id is None:
            row = cur.execute(
                "SELECT * FROM etl_run_logs WHERE status = %s ORDER BY run_id DESC LIMIT 1",
                [status],
            ).fetchone()
            if row is None:
                raise ConfigError(f"no {status} run in etl_run_logs")
            return row
        row = cur.execute("SELECT * FROM etl_run_logs WHERE run_id = %s", [run_id]).fetchone()
    if row is None:
        raise NoSuchRun(f"no run {run_id} in etl_run_logs")
    return row


def graph_run(settings: Settings, after: int | None = None) -> dict[str, Any] | None:
    """The newest succeeded run that loaded ``NEO4J_DATABASE`` (admin, bolt or sync mode).

    ``after``: only a run newer than that run id.
    """
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        return cur.execute(
            "SELECT * FROM etl_run_logs WHERE status = 'succeeded'"
            " AND mode IN ('admin', 'bolt', 'sync')"
            " AND coalesce(options->>'neo4j_database', %s) = %s AND run_id > %s"
            " ORDER BY run_id DESC LIMIT 1",
            [settings.neo4j_database, settings.neo4j_database, after or 0],
        ).fetchone()


def graph_counts(settings: Settings) -> tuple[int | None, dict[str, int], dict[str, int]]:
    """The newest run that built the graph (:func:`graph_run`): its id, the nodes written per
    label and the relationships per mapping (``TYPE.<id>``); ``(None, {}, {})`` before any."""
    row = graph_run(settings)
    if row is None:
        return None, {}, {}
    with connect_control(settings) as conn:
        rows = conn.execute(
            "SELECT object_kind, label, relationship_type, mapping_id, rows_written"
            " FROM etl_table_logs WHERE run_id = %s AND object_kind IN ('node', 'relationship')",
            [row["run_id"]],
        ).fetchall()
    labels = {label: n for kind, label, _, _, n in rows if kind == "node"}
    mappings = {f"{kind}.{mid}": n for k, _, kind, mid, n in rows if k == "relationship"}
    return row["run_id"], labels, mappings
