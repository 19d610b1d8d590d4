"""A running Neo4j over Bolt, as bolt and sync modes and the follower write to it: a verified
driver, its writer, and a failure after the driver's retries as one line saying what was
written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import DriverError, Neo4jError

from bulk360.errors import TargetError
from bulk360.graph import open_driver
from bulk360.load.writer import DriverWriter
from bulk360.options import WriteOptions
from bulk360.package.writer import GraphWriter
from bulk360.settings import Settings

__all__ = ["BoltTarget"]


class BoltTarget:
    """The target database of ``settings``, written as ``options`` say."""

    def __init__(self, settings: Settings, options: WriteOptions) -> None:
        self.uri = settings.neo4j_uri
        self._auth = (settings.neo4j_username, settings.neo4j_password)
        self.database = settings.neo4j_database
        self.batch_size = options.batch_size
        self.workers = max(1, options.workers)
        self.retry_seconds = options.retry_seconds
        self.writer: GraphWriter | None = None
        """The writer of the load under way (for what it wrote when it fails)."""

    def connect(self) -> Driver:
        """A verified driver; a bad URI, password or database is one line naming the URI."""
        driver = open_driver(
            self.uri,
            self._auth,
            max_transaction_retry_time=self.retry_seconds,
            # "label does not exist" and the like are expected before the first load.
            notifications_min_severity="OFF",
        )
        try:
            driver.execute_query("RETURN 1", database_=self.database, bookmark_manager_=None)
        except Neo4jError as exc:
            driver.close()
            raise TargetError(
                f"Neo4j at {self.uri} cannot serve database '{self.database}': {exc.message}"
            ) from None
        except DriverError as exc:
            driver.close()
            raise TargetError(f"Neo4j at {self.uri} does not answer: {exc}") from None
        return driver

    def preflight(self) -> None:
        """Connect once before anything is read, so that a bad target fails first."""
        self.connect().close()

    def close(self) -> None:
        return None

    def driver_writer(self, driver: Driver) -> DriverWriter:
        return DriverWriter(
            driver, self.database, self.batch_size, self.workers, GraphDatabase.bookmark_manager()
        )

    @contextmanager
    def failures(
        self, then: str = "run again to complete it (bolt mode is idempotent)"
    ) -> Iterator[None]:
        """A driver error after its retries becomes one line saying what was written."""
        try:
            yield
        except (Neo4jError, DriverError) as exc:
            message = exc.message if isinstance(exc, Neo4jError) else str(exc)
            reason = message or type(exc).__name__
            nodes = sum(self.writer.nodes_written.values()) if self.writer else 0
            relationships = sum(self.writer.relationships_written.values()) if self.writer else 0
            raise TargetError(
                f"writing to Neo4j at {self.uri} failed after {nodes:,} nodes and "
                f"{relationships:,} relationships: {reason.splitlines()[0]}; the graph is "
                f"incomplete, {then}"
            ) from None
