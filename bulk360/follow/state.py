"""What follow keeps between windows and across restarts: per followed table the columns the joins
read (its state), and per source the position applied.

A table's state is a Polars frame: the replica identity's columns as PostgreSQL's text
(``@<column>``), a node table's follow id (``:ID``, dense per label, given to each new key) and
the headers the plan reads of it, parsed as the local engine parses them (``:long`` as integers,
the rest as the text the readers write). Excluded columns are never in it.

On disk, under ``<import folder>/follow/<control database>/``::

    state.json                 format, the plan it follows, per source the applied position
    tables/<name>.parquet      a table's state at the last compaction
    tables/<name>.<n>.parquet  what checkpoint n changed: rows upserted, identities removed

A checkpoint writes its delta files first and then ``state.json`` (renamed into place): the
rename is the moment the checkpoint counts. Deltas are folded into the base files every
:data:`COMPACT_EVERY` checkpoints (across sessions: a ``--once`` from cron rewrites no base file
for its one window).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["COMPACT_EVERY", "FollowState", "Position"]

COMPACT_EVERY = 50
_FORMAT = 1
_DELETED = "@deleted"


@dataclass
class Position:
    """How far a source has been applied."""

    lsn: str
    """The end of the last applied transaction (the slot is advanced to it)."""
    commit_time: str | None = None
    """Its commit time (ISO), None before the first change."""


@dataclass
class FollowState:
    """The state of every followed table, and the applied position of every source."""

    folder: Path
    plan: str
    """A fingerprint of the plan followed: a change of the control rows shows."""
    positions: dict[str, Position] = field(default_factory=dict)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)
    checkpoint: int = 0
    deltas: dict[str, list[int]] = field(default_factory=dict)
    """Per table, the checkpoints whose delta files are not yet in its base file."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Per source, what else follow keeps (the relations it was sent)."""

    # ---- on disk -----------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def _file(self, table: str, checkpoint: int | None = None) -> Path:
        suffix = "" if checkpoint is None else f".{checkpoint}"
        return self.folder / "tables" / f"{table}{suffix}.parquet"

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (folder / "state.json").is_file()

    @classmethod
    def load(cls, folder: Path, identities: Mapping[str, list[str]]) -> FollowState:
        """The state in ``folder``: each table's base file with its deltas applied in order
        (``identities``: each table's identity columns, which the deltas replace rows by)."""
        data = json.loads((folder / "state.json").read_text())
        state = cls(
            folder,
            data["plan"],
            {name: Position(**p) for name, p in data["positions"].items()},
            next_ids=data["next_ids"],
            checkpoint=data["checkpoint"],
            deltas={k: list(v) for k, v in data["deltas"].items()},
            extra=data.get("extra", {}),
        )
        for table in data["tables"]:
            frame = pl.read_parquet(state._file(table))
            numbers = state.deltas.get(table, [])
            if numbers:
                # The deltas in order, the last of each identity winning: one pass over the base.
                changes = pl.concat(
                    [pl.read_parquet(state._file(table, n)) for n in numbers],
                    how="diagonal_relaxed",
                ).unique(identities[table], keep="last", maintain_order=True)
                frame = _apply(frame, changes, identities[table])
            state.tables[table] = frame
        return state

    def save(self, changed: Mapping[str, pl.DataFrame]) -> None:
        """A checkpoint: the delta of each changed table (rows upserted, and identities removed
        marked ``@deleted``), then ``state.json``; the tables' frames are already the new ones."""
        self.checkpoint += 1
        (self.folder / "tables").mkdir(parents=True, exist_ok=True)
        for table, delta in changed.items():
            path = self._file(table, self.checkpoint)
            delta.write_parquet(path)
            self.deltas.setdefault(table, []).append(self.checkpoint)
        self._write_state()

    def compact(self) -> None:
        """The base file of every table with deltas (or none yet) written anew, its deltas
        removed; a table no window changed is left as it is."""
        (self.folder / "tables").mkdir(parents=True, exist_ok=True)
        for table, frame in self.tables.items():
            if table not in self.deltas and self._file(table).exists():
                continue
            temporary = self._file(table).with_suffix(".tmp")
            frame.write_parquet(temporary)
            os.replace(temporary, self._file(table))
        old = self.deltas
        self.deltas = {}
        self._write_state()
        for table, numbers in old.items():
            for number in numbers:
                self._file(table, number).unlink(missing_ok=True)

    def _write_state(self) -> None:
        data = {
            "format": _FORMAT,
            "plan": self.plan,
            "positions": {name: vars(p) for name, p in self.positions.items()},
            "tables": sorted(self.tables),
            "next_ids": self.next_ids,
            "checkpoint": self.checkpoint,
            "deltas": self.deltas,
            "extra": self.extra,
        }
        temporary = self.state_file.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.state_file)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def delta(upserted: pl.DataFrame, deleted: pl.DataFrame) -> pl.DataFrame:
    """A checkpoint's delta of one table: rows upserted, and (identity only) rows removed."""
    removed = deleted.with_columns(pl.lit(True).alias(_DELETED))
    return pl.concat(
        [upserted.with_columns(pl.lit(False).alias(_DELETED)), removed], how="diagonal_relaxed"
    )


def _apply(frame: pl.DataFrame, changes: pl.DataFrame, identity: list[str]) -> pl.DataFrame:
    """``frame`` with the rows of ``changes`` replaced (by identity) or removed."""
    kept = frame.join(changes.select(identity), on=identity, how="anti", nulls_equal=True)
    upserted = changes.filter(~pl.col(_DELETED)).drop(_DELETED)
    return pl.concat([kept, upserted.select(frame.columns)], how="vertical_relaxed")
