"""What one API worker shares between requests (:class:`Serving`): the Neo4j driver, a pool of
control database connections and the cache of lists."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from fastapi import HTTPException
from neo4j import Driver
from neo4j.exceptions import DriverError, Neo4jError
from psycopg_pool import ConnectionPool

from bulk360.apps.lists import bought_since, stored_recommendations, without
from bulk360.apps.strategies import RecommendOptions
from bulk360.control.database import no_schema
from bulk360.errors import one_line
from bulk360.health import neo4j_driver
from bulk360.serve.cache import ListCache, make_store
from bulk360.settings import Settings

__all__ = ["POOL_SIZE", "Serving", "unavailable"]


POOL_SIZE = 16
"""Control database connections per worker (FastAPI runs up to 40 requests at once per
worker; the rest wait for a connection)."""


def unavailable(exc: BaseException) -> HTTPException:
    return HTTPException(503, one_line(exc))


class Serving:
    """What one worker shares between requests: the Neo4j driver, a pool of control database
    connections, and the cache of lists."""

    def __init__(self, settings: Settings, model: RecommendOptions) -> None:
        self.settings, self.model = settings, model
        self.driver: Driver = neo4j_driver(settings)
        # Opened without waiting: a control database down at start is a 503, not a crash.
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            kwargs={**settings.control_conninfo(), "autocommit": True},
            min_size=1,
            max_size=POOL_SIZE,
            timeout=10,
            open=False,
            name="bulk360-api",
        )
        self.cache = ListCache(
            settings, make_store(settings), model.customer_label, model.product_label
        )

    def open(self) -> None:
        self.pool.open(wait=False)
        self.cache.start()

    def close(self) -> None:
        self.cache.close()
        self.pool.close()
        self.driver.close()

    def live(
        self, query: Callable[..., dict[str, Any] | None], *args: Any
    ) -> dict[str, Any] | None:
        """What the graph answers now to ``query(driver, database, *args, model)``; 503 when
        Neo4j does not answer."""
        try:
            return query(self.driver, self.settings.neo4j_database, *args, self.model)
        except (Neo4jError, DriverError) as exc:
            raise HTTPException(503, f"Neo4j does not answer: {one_line(exc)}") from None

    @contextmanager
    def control(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection to the control database."""
        with self.pool.connection() as conn:
            try:
                yield conn
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                raise no_schema(self.settings) from None

    def stored_list(
        self, conn: psycopg.Connection[Any], customer: str, strategy: str
    ) -> tuple[dict[str, Any] | None, str]:
        """The customer's stored list without what they bought since, and how the cache
        answered (a ``Cache-Status`` value, RFC 9211)."""
        ticket = self.cache.ticket()
        if ticket is not None:
            hit = self.cache.get(ticket, strategy, customer)
            if hit is not None:
                return hit, "bulk360; hit"
        found = stored_recommendations(conn, customer, strategy)
        missed = "bulk360; fwd=bypass" if ticket is None else "bulk360; fwd=uri-miss"
        if found is None:
            return None, missed
        products = [item["product"] for item in found["items"]]
        try:
            gone = bought_since(
                self.driver, self.settings.neo4j_database, customer, products, self.model
            )
        except (Neo4jError, DriverError):
            return found, missed + '; detail="unfiltered"'  # served as stored, not cached
        found = without(found, gone)
        if ticket is not None and self.cache.put(ticket, strategy, customer, found):
            return found, missed + "; stored"
        return found, missed
