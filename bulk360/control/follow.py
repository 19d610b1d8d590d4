"""The followed sources in ``etl_follow_sources``: their slots, where follow keeps its state, and
how far the graph holds each source's changes (for ``bulk360 follow status``, ``/health`` and
``bulk360 check``; follow's state folder holds the position that counts after a crash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from bulk360.control.database import connect_control
from bulk360.settings import Settings

__all__ = [
    "FollowRow",
    "follow_rows",
    "forget_sources",
    "record_caught_up",
    "record_position",
    "register_source",
]


@dataclass(frozen=True)
class FollowRow:
    """A followed source as the control database knows it."""

    source: str
    slot: str
    publication: str
    state_dir: str
    applied_lsn: str | None
    applied_commit_at: datetime | None
    applied_at: datetime | None
    caught_up_at: datetime | None
    run_id: int | None


def register_source(
    settings: Settings, source: str, slot: str, publication: str, state_dir: str, lsn: str
) -> None:
    with connect_control(settings) as conn:
        conn.execute(
            "INSERT INTO etl_follow_sources (source_name, slot_name, publication_name, state_dir,"
            " applied_lsn, applied_at, caught_up_at) VALUES (%s, %s, %s, %s, %s, now(), now())"
            " ON CONFLICT (source_name) DO UPDATE SET slot_name = EXCLUDED.slot_name,"
            " publication_name = EXCLUDED.publication_name, state_dir = EXCLUDED.state_dir,"
            " started_at = now(), applied_lsn = EXCLUDED.applied_lsn, applied_commit_at = NULL,"
            " applied_at = now(), caught_up_at = now()",
            [source, slot, publication, state_dir, lsn],
        )


def record_position(
    settings: Settings, source: str, lsn: str, commit_at: datetime | None, run_id: int
) -> None:
    """A window of ``source`` is in the graph, up to ``lsn``."""
    with connect_control(settings) as conn:
        conn.execute(
            "UPDATE etl_follow_sources SET applied_lsn = %s, applied_commit_at ="
            " coalesce(%s, applied_commit_at), applied_at = now(), run_id = %s"
            " WHERE source_name = %s",
            [lsn, commit_at, run_id, source],
        )


def record_caught_up(settings: Settings, sources: list[str], at: datetime | None = None) -> None:
    """Everything ``sources`` committed before ``at`` (default: now) is in the graph."""
    with connect_control(settings) as conn:
        conn.execute(
            "UPDATE etl_follow_sources SET caught_up_at = greatest(caught_up_at,"
            " coalesce(%s, now())) WHERE source_name = ANY(%s)",
            [at, sources],
        )


def follow_rows(settings: Settings) -> list[FollowRow]:
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        rows: list[dict[str, Any]] = cur.execute(
            "SELECT source_name, slot_name, publication_name, state_dir, applied_lsn::text,"
            " applied_commit_at, applied_at, caught_up_at, run_id"
            " FROM etl_follow_sources ORDER BY source_name"
        ).fetchall()
    return [
        FollowRow(
            r["source_name"],
            r["slot_name"],
            r["publication_name"],
            r["state_dir"],
            r["applied_lsn"],
            r["applied_commit_at"],
            r["applied_at"],
            r["caught_up_at"],
            r["run_id"],
        )
        for r in rows
    ]


def forget_sources(settings: Settings) -> None:
    """No source is followed any more (``bulk360 follow stop --drop``)."""
    with connect_control(settings) as conn:
        conn.execute("DELETE FROM etl_follow_sources")
