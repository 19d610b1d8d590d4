"""The API's cache of recommendation lists, kept true by the control database's notifications.

A list is cached under (recommendation run, strategy, customer): the run is the newest one that
succeeded, so a new run's lists are new keys. Each API worker holds one :class:`ListCache`, whose
thread listens on :data:`bulk360.control.notify.CHANNEL`: a recommendation run moves it to the
new run, a run or follow window that touched a customer's relationships drops that customer's
lists, nodes of the customer or product label deleted (or a rebuilt graph) drop every list.
While the thread is not listening (the control database is away), nothing is cached or read
from the cache, and when it listens again the cache starts empty: no notification can have been
missed by what it serves. A list read while a notification arrived is served, not cached.

The lists live in the worker's memory (:class:`MemoryStore`), or in Redis when
``BULK360_REDIS_URL`` is set (:class:`RedisStore`, shared by the workers); either way an entry
expires after ``BULK360_API_CACHE_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from cachetools import TTLCache

from bulk360.apps.strategies import STRATEGIES
from bulk360.control.notify import CHANNEL
from bulk360.settings import Settings

__all__ = ["ListCache", "MemoryStore", "RedisStore", "Store", "Ticket", "make_store"]

log = logging.getLogger("bulk360.serve.cache")

RECONNECT_SECONDS = 1.0


class Store(Protocol):
    """Where cached lists live: JSON-able values by key, each for at most ``seconds``."""

    def get(self, key: str) -> Any | None: ...
    def put(self, key: str, value: Any) -> None: ...
    def drop(self, keys: Iterable[str]) -> None: ...
    def clear(self) -> None: ...


class MemoryStore:
    """The worker's own memory: the newest ``size`` entries."""

    def __init__(self, seconds: float, size: int = 100_000) -> None:
        self._entries: TTLCache[str, Any] = TTLCache(size, seconds)
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = value

    def drop(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisStore:
    """A Redis server shared by the workers; one that does not answer is a miss, never an
    error (the list is read from the control database instead)."""

    PREFIX = "bulk360:lists:"

    def __init__(self, url: str, seconds: float) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._seconds = max(1, round(seconds))

    def get(self, key: str) -> Any | None:
        try:
            found = self._redis.get(self.PREFIX + key)
        except self._errors as exc:
            log.warning("the cache's Redis does not answer: %s", type(exc).__name__)
            return None
        return None if found is None else json.loads(found)

    def put(self, key: str, value: Any) -> None:
        with suppress(*self._errors):
            self._redis.set(self.PREFIX + key, json.dumps(value), ex=self._seconds)

    def drop(self, keys: Iterable[str]) -> None:
        names = [self.PREFIX + key for key in keys]
        try:
            if names:
                self._redis.unlink(*names)
        except self._errors:
            self.clear()

    def clear(self) -> None:
        try:
            batch: list[Any] = []
            for name in self._redis.scan_iter(match=self.PREFIX + "*", count=1000):
                batch.append(name)
                if len(batch) == 1000:
                    self._redis.unlink(*batch)
                    batch = []
            if batch:
                self._redis.unlink(*batch)
        except self._errors as exc:
            log.warning("the cache's Redis could not be cleared: %s", type(exc).__name__)


def make_store(settings: Settings) -> Store | None:
    """Redis when ``BULK360_REDIS_URL`` is set, else the worker's memory; None when
    ``BULK360_API_CACHE_SECONDS`` is 0."""
    if settings.api_cache_seconds <= 0:
        return None
    if settings.redis_url:
        return RedisStore(settings.redis_url, settings.api_cache_seconds)
    return MemoryStore(settings.api_cache_seconds)


@dataclass(frozen=True)
class Ticket:
    """Taken before a list is read: where it is cached, and whether anything changed since."""

    generation: int
    version: int


class ListCache:
    """One worker's view of the cache (see the module's documentation)."""

    def __init__(
        self, settings: Settings, store: Store | None, customer_label: str, product_label: str
    ) -> None:
        self._settings = settings
        self._store = store
        self._customer_label, self._product_label = customer_label, product_label
        self._lock = threading.Lock()
        self._generation = 0
        self._version = 0
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="bulk360-cache", daemon=True)

    def start(self, wait: float = 5.0) -> None:
        """Start listening; wait at most ``wait`` seconds for it (a control database that does
        not answer then is a worker that serves without the cache until it does)."""
        self._thread.start()
        self._listening.wait(wait)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    # ---- lists ----------------------------------------------------------------------------

    def ticket(self) -> Ticket | None:
        """None when lists are neither cached nor read from the cache now."""
        if self._store is None or not self._listening.is_set():
            return None
        with self._lock:
            return Ticket(self._generation, self._version)

    @staticmethod
    def _key(generation: int, strategy: str, customer: str) -> str:
        return f"{generation}:{strategy}:{customer}"

    def get(self, ticket: Ticket, strategy: str, customer: str) -> Any | None:
        assert self._store is not None
        return self._store.get(self._key(ticket.generation, strategy, customer))

    def put(self, ticket: Ticket, strategy: str, customer: str, value: Any) -> bool:
        """Cache ``value`` unless something changed since ``ticket`` was taken."""
        assert self._store is not None
        with self._lock:
            if not self._listening.is_set() or self._version != ticket.version:
                return False
            self._store.put(self._key(ticket.generation, strategy, customer), value)
            return True

    # ---- the listener ---------------------------------------------------------------------

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(**self._settings.control_conninfo(), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._reload(conn, everything=True)
                    self._listening.set()
                    while not self._stop.is_set():
                        # Gathered first: the connection runs no query while it waits.
                        for note in list(conn.notifies(timeout=0.5)):
                            self._heard(conn, note.payload)
            except psycopg.Error as exc:
                if self._listening.is_set():
                    log.warning("the cache stopped listening: %s", type(exc).__name__)
            with self._lock:
                self._listening.clear()
                self._version += 1
            self._stop.wait(RECONNECT_SECONDS)

    def _reload(self, conn: psycopg.Connection[Any], everything: bool = False) -> None:
        row = conn.execute(
            "SELECT coalesce(max(rec_run_id), 0) FROM recommendation_runs"
            " WHERE status = 'succeeded'"
        ).fetchone()
        with self._lock:
            moved = row is not None and row[0] != self._generation
            self._generation = row[0] if row else 0
            if moved or everything:
                self._version += 1
                if self._store is not None:
                    self._store.clear()

    def _heard(self, conn: psycopg.Connection[Any], payload: str) -> None:
        try:
            note = json.loads(payload)
            kind, labels = note["kind"], note.get("labels")
        except (ValueError, KeyError, TypeError):
            log.warning("the cache heard a notification it cannot read: cleared")
            self._drop(None)
            return
        if kind == "recommendations":
            self._reload(conn)
        elif kind == "graph":
            if labels is None or labels.get(self._product_label, ()) is None:
                self._drop(None)
            elif self._customer_label in labels:
                self._drop(labels[self._customer_label])

    def _drop(self, customers: list[str] | None) -> None:
        """Drop the lists of ``customers`` (None: every list)."""
        with self._lock:
            self._version += 1
            if self._store is None:
                return
            if customers is None:
                self._store.clear()
            else:
                self._store.drop(
                    self._key(self._generation, strategy, customer)
                    for customer in customers
                    for strategy in STRATEGIES
                )
