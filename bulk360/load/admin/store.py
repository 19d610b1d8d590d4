"""The staging store and the swap: an import never touches the target database.

It goes into a staging database of the same ``NEO4J_HOME``, and only when it succeeded (and its
totals equal the manifest) is the target replaced, by renaming folders::

    <databases>/<db>        →  <databases>/.<db>.bulk360-replaced    (kept until the swap is done)
    <databases>/<staging>   →  <databases>/<db>
    (the same for <transactions>/)

A journal file beside them records a swap in progress; if the process dies in the middle, the
next admin run (:meth:`StagingStore.recover`) finishes a complete swap or restores the replaced
store. The server must be stopped throughout.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bulk360.errors import TargetError, TargetRunning
from bulk360.load.admin.neo4j_admin import neo4j_conf

__all__ = ["STORE_PER_CSV_BYTE", "StagingStore", "StoreFolders"]

STORE_PER_CSV_BYTE = 3.0
"""Bytes of store an import needs per byte of CSV, with a margin: the Customer 360 sample's
store is 2.5 times its files at scale 1 (158 MB of files, 394 MB of store), 2.3 at scale 0.05
and 2.9 at the sample's own size."""
_MARGIN = 512 << 20
"""Beyond the store: the transaction log Neo4j preallocates (256 MiB) and neo4j-admin's own
temporary files."""


@dataclass(frozen=True)
class StoreFolders:
    """Where a Neo4j home keeps its databases' store files and transaction logs."""

    databases: Path
    transactions: Path

    @classmethod
    def of(cls, home: Path) -> StoreFolders:
        """Read from ``conf/neo4j.conf`` (``server.directories.*``), defaults otherwise."""
        settings = neo4j_conf(home)

        def folder(name: str, default: Path) -> Path:
            value = settings.get(name, [""])[-1]
            if not value:
                return default
            path = Path(value)
            return path if path.is_absolute() else home / path

        data = folder("server.directories.data", home / "data")
        return cls(
            databases=data / "databases",
            transactions=folder("server.directories.transaction.logs.root", data / "transactions"),
        )

    @property
    def parents(self) -> tuple[Path, Path]:
        return (self.databases, self.transactions)


class StagingStore:
    """The staging database of ``database`` in ``home``, and the swap that replaces it."""

    def __init__(self, home: Path, database: str) -> None:
        self._home = home
        self.database = database
        self.staging = f"{database}-bulk360-staging"
        self.folders = StoreFolders.of(home)
        self._journal = self.folders.databases / f".{database}.bulk360-swap.json"

    def _replaced(self, parent: Path) -> Path:
        return parent / f".{self.database}.bulk360-replaced"

    def server_pid(self) -> int | None:
        """The pid of a running Neo4j server of this home, from its pid file."""
        pid_file = self._home / "run" / "neo4j.pid"
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def require_stopped(self) -> None:
        """A :class:`TargetRunning` error when the server runs."""
        if self.server_pid() is not None:
            raise TargetRunning(f"Neo4j is running (home {self._home}): stop it first")

    def database_exists(self) -> bool:
        folder = self.folders.databases / self.database
        return folder.is_dir() and any(folder.iterdir())

    @property
    def interrupted(self) -> bool:
        """Whether a swap's journal is left over."""
        return self._journal.exists()

    def check_space(self, files_bytes: int) -> int:
        """Refuse (one line) when the store's file system cannot hold the import; the need."""
        needed = int(files_bytes * STORE_PER_CSV_BYTE) + _MARGIN
        self.folders.databases.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folders.databases).free
        if free < needed:
            raise TargetError(
                f"not enough disk space for the import: {self.folders.databases} has "
                f"{free / 2**20:,.0f} MiB free, the import needs about {needed / 2**20:,.0f} MiB "
                f"({files_bytes / 2**20:,.0f} MiB of files); nothing was changed"
            )
        return needed

    def discard_staging(self) -> None:
        """Remove the staging store (a failed import's, or a leftover)."""
        for parent in self.folders.parents:
            shutil.rmtree(parent / self.staging, ignore_errors=True)

    def swap(self) -> bool:
        """Replace the target by the staging store; returns whether a database was replaced.

        The replaced store is kept until both folders are in place; if a rename fails, it is
        restored and the staging store removed.
        """
        self.require_stopped()
        replaced = self.database_exists()
        self._write_journal("swapping")
        try:
            for parent in self.folders.parents:
                if (parent / self.database).exists():
                    os.replace(parent / self.database, self._replaced(parent))
            for parent in self.folders.parents:
                os.replace(parent / self.staging, parent / self.database)
            self._write_journal("swapped")
        except OSError as exc:
            self._roll_back()
            raise TargetError(
                f"replacing database '{self.database}' with the import failed "
                f"({exc.strerror or exc}); the previous database was restored"
            ) from None
        self._finish_swap()
        return replaced

    def recover(self) -> str | None:
        """Finish or undo a swap that a process death interrupted; what was done, if anything."""
        try:
            state = json.loads(self._journal.read_text()).get("state")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            state = None
        if state == "swapped":
            self._finish_swap()
            return f"finished an interrupted swap of database '{self.database}'"
        self._roll_back()
        return f"undid an interrupted swap: database '{self.database}' restored"

    def _write_journal(self, state: str) -> None:
        temporary = self._journal.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump({"database": self.database, "staging": self.staging, "state": state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._journal)

    def _finish_swap(self) -> None:
        for parent in self.folders.parents:
            shutil.rmtree(self._replaced(parent), ignore_errors=True)
        self._journal.unlink(missing_ok=True)

    def _roll_back(self) -> None:
        for parent in self.folders.parents:
            kept = self._replaced(parent)
            if kept.exists():
                shutil.rmtree(parent / self.database, ignore_errors=True)
                os.replace(kept, parent / self.database)
        self.discard_staging()
        self._journal.unlink(missing_ok=True)
