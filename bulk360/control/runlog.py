"""The audit rows of a run: ``etl_run_logs``, ``etl_table_logs``, ``etl_schema_columns`` and
``run_artifacts``, and the runs found dead (their process gone) marked failed."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bulk360.control.database import connect_control, error_reason
from bulk360.errors import ConfigError
from bulk360.layout import FAILURE_FILE, work_dir_of
from bulk360.settings import Settings

__all__ = ["RUN_LOCK", "RunLog", "keep_failure", "reconcile"]


# Advisory-lock namespace of running runs: a run holds (RUN_LOCK, run_id) for as long as it
# works, so that a later run can tell a run that died (lock free) from one still working.
RUN_LOCK = 360360

_STOPPED = (
    "the run stopped without finishing: its process ended (killed, or the machine stopped) "
    "before it could record why"
)


class RunLog:
    """The audit rows of one run: ``etl_run_logs``, ``etl_table_logs``, ``run_artifacts``.

    Each write is its own autocommitted statement, so what a failed run did stays recorded. A
    connection of its own holds the run's advisory lock until :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        mode: str,
        options: Mapping[str, Any],
        version: str,
        resumed_from: int | None = None,
    ):
        self._settings = settings
        with connect_control(settings) as conn:
            self.reconciled = reconcile(conn)
            row = conn.execute("SELECT instance_id::text FROM control_instance").fetchone()
        assert row is not None
        self.instance: str = row[0]
        uid = uuid.uuid4()
        self.token = uid.hex[:8]
        self._lock = psycopg.connect(**settings.control_conninfo())
        try:
            with self._lock.transaction():
                inserted = self._lock.execute(
                    "INSERT INTO etl_run_logs"
                    " (mode, status, options, bulk360_version, resumed_from, run_uid)"
                    " VALUES (%s, 'running', %s, %s, %s, %s) RETURNING run_id",
                    [mode, json.dumps(dict(options)), version, resumed_from, uid],
                ).fetchone()
                assert inserted is not None
                self.run_id: int = inserted[0]
                # Taken before the row is visible, so no other run ever sees it unlocked.
                self._lock.execute("SELECT pg_advisory_lock(%s, %s)", [RUN_LOCK, self.run_id])
        except BaseException:
            self._lock.close()
            raise
        self._lock.autocommit = True

    def _write(self, query: str, values: list[Any]) -> None:
        try:
            with connect_control(self._settings) as conn:
                conn.execute(query, values)
        except psycopg.Error as exc:  # the connection broke mid-statement
            raise ConfigError(
                f"writing to the control database {self._settings.etl_db_name} failed: "
                f"{error_reason(exc)}"
            ) from None

    def folder(self, path: Path) -> None:
        """Where the run's import folder will be (so a stopped run can be found and cleaned)."""
        self._write(
            "UPDATE etl_run_logs SET import_dir = %s WHERE run_id = %s", [str(path), self.run_id]
        )

    def published(self, manifest_sha256: str, at: datetime | None = None) -> None:
        """The import folder is complete and published (``at``, default now); its manifest's
        SHA-256."""
        self._write(
            "UPDATE etl_run_logs SET published_at = coalesce(%s, now()), manifest_sha256 = %s"
            " WHERE run_id = %s",
            [at, manifest_sha256, self.run_id],
        )

    def diffed_against(self, run_id: int) -> None:
        """The run whose import folder a sync compared its own with."""
        self._write(
            "UPDATE etl_run_logs SET diffed_against = %s WHERE run_id = %s", [run_id, self.run_id]
        )

    def schema(self, columns: list[tuple[str, str, str, str, int]]) -> None:
        """The (source, table, column, type, position) of every mapped table read."""
        if not columns:
            return
        rows = [(self.run_id, *column) for column in columns]
        marks = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
        self._write(
            "INSERT INTO etl_schema_columns"
            " (run_id, source_name, table_name, column_name, type_name, position)"
            f" VALUES {marks} ON CONFLICT DO NOTHING",
            [value for row in rows for value in row],
        )

    def copy_schema(self, from_run: int) -> None:
        """The columns a resumed run read, recorded again for this run."""
        self._write(
            "INSERT INTO etl_schema_columns"
            " SELECT %s, source_name, table_name, column_name, type_name, position"
            " FROM etl_schema_columns WHERE run_id = %s ON CONFLICT DO NOTHING",
            [self.run_id, from_run],
        )

    def table(self, **values: Any) -> None:
        """Insert one ``etl_table_logs`` row for this run."""
        if "details" in values:
            values["details"] = json.dumps(values["details"])
        columns = ", ".join(["run_id", *values])
        marks = ", ".join(["%s"] * (len(values) + 1))
        self._write(
            f"INSERT INTO etl_table_logs ({columns}) VALUES ({marks})",
            [self.run_id, *values.values()],
        )

    def artifact(self, kind: str, path: str, checksum: str | None, loaded: bool) -> None:
        """Register what the run produced; ``loaded`` sets ``last_run_time`` to now."""
        self._write(
            "INSERT INTO run_artifacts (run_id, kind, path, checksum, last_run_time)"
            " VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)",
            [self.run_id, kind, path, checksum, loaded],
        )

    def finish(self, status: str, error: str | None = None, **values: Any) -> None:
        """Close the run row with its status, error text and totals."""
        values = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in values.items()}
        sets = ", ".join(f"{name} = %s" for name in values)
        extra = f", {sets}" if sets else ""
        self._write(
            f"UPDATE etl_run_logs SET status = %s, finished_at = now(), error_text = %s{extra}"
            " WHERE run_id = %s",
            [status, error, *values.values(), self.run_id],
        )

    def hold(self) -> None:
        """Take the run's lock again when its connection broke (the control database
        restarted): a long session stays visible as running, never reconciled as gone."""
        if not (self._lock.closed or self._lock.broken):
            return
        self._lock = psycopg.connect(**self._settings.control_conninfo(), autocommit=True)
        self._lock.execute("SELECT pg_advisory_lock(%s, %s)", [RUN_LOCK, self.run_id])
        self._write(
            "UPDATE etl_run_logs SET status = 'running', finished_at = NULL, error_text = NULL"
            " WHERE run_id = %s AND status = 'failed'",
            [self.run_id],
        )

    def close(self) -> None:
        """Release the run's lock (closing its connection)."""
        self._lock.close()


def reconcile(conn: psycopg.Connection[Any]) -> list[int]:
    """Mark runs found ``running`` whose process is gone as failed; returns their ids.

    A run that lost the control database wrote why into its folder (``failure.json``); that
    text becomes its error. Its unpublished work folder is removed.
    """
    stale = conn.execute(
        "SELECT run_id, import_dir FROM etl_run_logs WHERE status = 'running' ORDER BY run_id"
    ).fetchall()
    marked = []
    for run_id, import_dir in stale:
        with conn.transaction():
            row = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s)", [RUN_LOCK, run_id]
            ).fetchone()
            if not (row and row[0]):
                continue  # still running
            error, finished = _failure_of(Path(import_dir) if import_dir else None)
            conn.execute(
                "UPDATE etl_run_logs SET status = 'failed', error_text = %s,"
                " finished_at = coalesce(%s::timestamptz, now()) WHERE run_id = %s",
                [error or _STOPPED, finished, run_id],
            )
        marked.append(run_id)
    return marked


def keep_failure(path: Path, run_id: int, error: str, reason: str, trace: str | None) -> None:
    """Write why run ``run_id`` failed into ``path`` (``failure.json``), when the control
    database could not take it (``reason``); the next run marks the run failed with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    failed = {
        "run_id": run_id,
        "error": error,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "not_recorded_because": reason,
    }
    path.write_text(json.dumps(failed | ({"traceback": trace} if trace else {}), indent=2))


def _failure_of(final_dir: Path | None) -> tuple[str | None, str | None]:
    """The failure a run wrote into its folder, and remove its unpublished work folder."""
    if final_dir is None:
        return None, None
    work_dir = work_dir_of(final_dir)
    found: dict[str, Any] = {}
    for folder in (final_dir, work_dir):
        try:
            found = json.loads((folder / FAILURE_FILE).read_text())
            break
        except (OSError, ValueError):
            continue
    shutil.rmtree(work_dir, ignore_errors=True)
    return found.get("error"), found.get("finished_at")
