"""The one seam to the target Neo4j over Bolt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import AuthError, ConfigurationError, Neo4jError, ServiceUnavailable

from bulk360.errors import ConfigError, TargetError
from bulk360.settings import Settings

__all__ = ["connect_graph"]


@contextmanager
def connect_graph(settings: Settings) -> Iterator[Driver]:
    """A verified driver for ``NEO4J_URI``; a failure is one line naming the URI, not the password."""
    try:
        driver = GraphDatabase.driver(
            settings.neo4j_uri, auth=(settings.neo4j_username, settings.neo4j_password)
        )
    except (ConfigurationError, ValueError) as exc:
        raise ConfigError(f"NEO4J_URI '{settings.neo4j_uri}' is not usable: {exc}") from None
    try:
        try:
            driver.verify_connectivity()
        except AuthError:
            raise TargetError(
                f"Neo4j at {settings.neo4j_uri} refused user '{settings.neo4j_username}': "
                "check NEO4J_USERNAME and NEO4J_PASSWORD"
            ) from None
        except (ServiceUnavailable, OSError, Neo4jError) as exc:
            raise TargetError(f"Neo4j at {settings.neo4j_uri} does not answer: {exc}") from None
        yield driver
    finally:
        driver.close()
