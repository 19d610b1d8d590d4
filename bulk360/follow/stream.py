"""Receive: one source's slot read through PostgreSQL's streaming replication protocol.

``START_REPLICATION SLOT ... LOGICAL`` with the built-in ``pgoutput`` plugin, protocol version 2
with ``streaming on`` (a transaction larger than ``logical_decoding_work_mem`` arrives in blocks
before it commits, instead of being decoded again from disk at its commit) and ``messages on``
(bulk360's markers, :mod:`bulk360.follow.changes`). psycopg 3 has no client for the protocol;
psycopg2's ``LogicalReplicationConnection`` does, and it is used here only.

A thread of its own reads the stream into a bounded queue and answers the server: psycopg2
replies to keepalives that ask for it, and a standby status update goes out every few seconds
and as soon as follow confirms a position (:meth:`ReplicationStream.confirm`), with only what
follow has checkpointed as flushed, so the slot never moves past what the graph and the state
hold. While the queue is full (follow applying a large window) the thread keeps sending status
updates, so the server does not time the session out.
"""

from __future__ import annotations

import contextlib
import queue
import select
import threading
from dataclasses import dataclass
from typing import Any

from bulk360.follow.changes import format_lsn
from bulk360.follow.pgoutput import Message, StreamStart, StreamStop, parse

__all__ = ["Received", "ReplicationStream", "SlotLost", "StreamLost"]

_STATUS_SECONDS = 5.0
_QUEUE_MESSAGES = 50_000


class StreamLost(Exception):
    """The replication session broke (a restart, a network cut): connect again."""


class SlotLost(Exception):
    """The slot cannot be read any more (invalidated by ``max_slot_wal_keep_size``, dropped,
    or in use by another session)."""


@dataclass(frozen=True)
class Received:
    """One message of the stream: where it starts in the WAL, and its pgoutput message (parsed
    by the receiving thread, so that parsing overlaps the main thread's waits for Neo4j)."""

    data_start: int
    message: Message


class ReplicationStream:
    """One source's slot, streamed by a thread from ``start_lsn`` on."""

    def __init__(
        self,
        name: str,
        conninfo: dict[str, Any],
        slot: str,
        publication: str,
        start_lsn: int,
    ) -> None:
        self.name = name
        self.conninfo = {k: v for k, v in conninfo.items() if v is not None}
        self.slot = slot
        self.publication = publication
        self.start_lsn = start_lsn
        self._queue: queue.Queue[Received | BaseException] = queue.Queue(_QUEUE_MESSAGES)
        self._confirmed = start_lsn
        self._sent = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._cursor: Any = None

    def start(self) -> None:
        """Open the replication session and start streaming (errors here are raised here)."""
        import psycopg2
        import psycopg2.extras

        try:
            self._conn = psycopg2.connect(
                connection_factory=psycopg2.extras.LogicalReplicationConnection, **self.conninfo
            )
            self._cursor = self._conn.cursor()
            self._cursor.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=format_lsn(self.start_lsn),
                status_interval=_STATUS_SECONDS,
                options={
                    "proto_version": "2",
                    "publication_names": _quoted(self.publication),
                    "streaming": "on",
                    "messages": "true",
                },
            )
        except psycopg2.Error as exc:
            self.close()
            raise _lost(self.name, self.slot, exc) from None
        self._thread = threading.Thread(
            target=self._receive, name=f"bulk360-receive-{self.name}", daemon=True
        )
        self._thread.start()

    def confirm(self, lsn: int) -> None:
        """Everything up to ``lsn`` is in the graph and in the state: the slot may move there."""
        if lsn > self._confirmed:
            self._confirmed = lsn

    def get(self, timeout: float) -> list[Received]:
        """The messages received so far (waiting up to ``timeout`` seconds for the first);
        raises :class:`StreamLost` or :class:`SlotLost` when the session broke."""
        found: list[Received] = []
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return found
        while True:
            if isinstance(item, BaseException):
                raise item
            found.append(item)
            if len(found) >= _QUEUE_MESSAGES:
                return found
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return found

    def stop(self) -> None:
        """Tell the thread to stop (:meth:`close` waits for it)."""
        self._stop.set()

    def close(self) -> None:
        """Stop the thread and close the session (the slot keeps what was not confirmed)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = self._cursor = None

    # ---- the thread -------------------------------------------------------------------------

    def _status(self, force: bool = False) -> None:
        """A standby status update with the confirmed position, when it moved (or ``force``)."""
        confirmed = self._confirmed
        if confirmed != self._sent or force:
            self._cursor.send_feedback(
                write_lsn=confirmed, flush_lsn=confirmed, apply_lsn=confirmed, force=True
            )
            self._sent = confirmed

    def _put(self, item: Received | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=1.0)
                return
            except queue.Full:
                self._status(force=True)  # the server must hear from us while follow works

    def _receive(self) -> None:
        import psycopg2

        cursor = self._cursor
        streamed = False  # inside a block of a transaction streamed before its commit
        try:
            while not self._stop.is_set():
                received = cursor.read_message()
                if received is not None:
                    message = parse(received.payload, streamed)
                    if isinstance(message, StreamStart | StreamStop):
                        streamed = isinstance(message, StreamStart)
                    self._put(Received(received.data_start, message))
                    continue
                self._status()
                with contextlib.suppress(InterruptedError, ValueError):
                    select.select([self._conn], [], [], 0.05)
        except psycopg2.Error as exc:
            if not self._stop.is_set():
                self._put(_lost(self.name, self.slot, exc))
        except BaseException as exc:  # a bug: handed to the main thread to raise
            if not self._stop.is_set():
                self._put(exc)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lost(source: str, slot: str, exc: Any) -> Exception:
    """A psycopg2 error as :class:`SlotLost` (the slot cannot be read: SQLSTATE class 55, an
    invalidated or busy slot; 42704, no such slot) or :class:`StreamLost` (anything else: the
    connection)."""
    code = getattr(exc, "pgcode", None) or ""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if code.startswith("55") or code == "42704":
        return SlotLost(f"source '{source}': slot {slot} cannot be read: {reason}")
    return StreamLost(f"source '{source}': the replication connection was lost ({reason})")
