"""The one seam to the target Neo4j over Bolt."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import AuthError, ConfigurationError, Neo4jError, ServiceUnavailable

from bulk360.errors import ConfigError, TargetError, one_line
from bulk360.settings import Settings

__all__ = [
    "BOLT_SCHEMES",
    "bolt_uri",
    "connect_graph",
    "open_driver",
    "quoted",
    "tls_problem",
    "unreachable",
]

# The driver logs a failed connection as a warning too; bulk360 says it once, in its own line
# (``--debug``'s logging configuration still shows the driver's).
logging.getLogger("neo4j").addHandler(logging.NullHandler())

BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
"""The URI schemes bulk360 speaks: Bolt direct or routed, with TLS (``+s``) or TLS accepting a
self-signed certificate (``+ssc``); Aura is ``neo4j+s://``."""


def quoted(name: str) -> str:
    """A backtick-quoted Cypher label, type or property name."""
    return "`" + name.replace("`", "``") + "`"


def bolt_uri(uri: str) -> str:
    """``uri`` if it names a Bolt server, else a :class:`ConfigError` saying what would.

    The driver also accepts ``http://`` (its HTTP client is an optional extra that bulk360 does
    not install), and port 7474 is Neo4j Browser's, a common first mistake.
    """
    scheme, sep, rest = uri.partition("://")
    if sep and scheme.lower() in BOLT_SCHEMES:
        return uri
    if not sep:
        scheme, rest = "", uri
    hint = ""
    if scheme.lower() in ("http", "https") or ":7474" in rest or ":7473" in rest:
        host = rest.split("/")[0].rsplit(":", 1)[0] or "localhost"
        hint = (
            f"; 7474 is Neo4j Browser's HTTP port, Bolt listens on 7687 (e.g. bolt://{host}:7687)"
        )
    raise ConfigError(
        f"NEO4J_URI '{uri}' is not a Bolt URI: bulk360 speaks Bolt, with the schemes "
        + ", ".join(f"{s}://" for s in BOLT_SCHEMES)
        + " (neo4j+s:// for Aura)"
        + hint
    )


def _ssl_error(exc: BaseException | None, seen: set[int] | None = None) -> ssl.SSLError | None:
    """The TLS failure somewhere in ``exc``'s causes (the driver wraps it, routing in a group)."""
    seen = set() if seen is None else seen
    if exc is None or id(exc) in seen:
        return None
    seen.add(id(exc))
    if isinstance(exc, ssl.SSLError):
        return exc
    for inner in (*getattr(exc, "exceptions", ()), exc.__cause__, exc.__context__):
        found = _ssl_error(inner, seen)
        if found is not None:
            return found
    return None


def tls_problem(uri: str, exc: BaseException) -> str | None:
    """What went wrong with TLS when connecting to ``uri`` failed with ``exc`` (None: not TLS)."""
    found = _ssl_error(exc)
    if found is None:
        return None
    if isinstance(found, ssl.SSLCertVerificationError):
        why = str(found.verify_message or found.reason or found).rstrip(".")
        if "mismatch" in why or "not valid for" in why:
            return (
                f"Neo4j at {uri} has a TLS certificate for another host name ({why}): connect by "
                "a name the certificate holds"
            )
        return (
            f"Neo4j at {uri} has a TLS certificate that is not trusted ({why}): trust the "
            "authority that signed it (SSL_CERT_FILE=its certificate) or, for a self-signed "
            "certificate, use the +ssc scheme"
        )
    return (
        f"Neo4j at {uri} failed the TLS handshake ({found.reason or found}): is TLS enabled on its "
        "Bolt connector? (without TLS, use bolt:// or neo4j://)"
    )


def unreachable(uri: str, exc: BaseException) -> str:
    """One line on why Neo4j at ``uri`` could not be reached."""
    return tls_problem(uri, exc) or f"Neo4j at {uri} does not answer: {one_line(exc)}"


def open_driver(uri: str, auth: tuple[str, str], **config: Any) -> Driver:
    """A verified driver for ``uri``; a failure is one line naming the URI, never the password."""
    bolt_uri(uri)
    try:
        driver = GraphDatabase.driver(uri, auth=auth, **config)
    except (ConfigurationError, ValueError) as exc:
        raise ConfigError(f"NEO4J_URI '{uri}' is not usable: {exc}") from None
    try:
        driver.verify_connectivity()
    except AuthError:
        driver.close()
        raise TargetError(
            f"Neo4j at {uri} refused user '{auth[0]}': check NEO4J_USERNAME and NEO4J_PASSWORD"
        ) from None
    except (ServiceUnavailable, OSError, Neo4jError) as exc:
        driver.close()
        raise TargetError(unreachable(uri, exc)) from None
    return driver


@contextmanager
def connect_graph(settings: Settings) -> Iterator[Driver]:
    """A verified driver for ``NEO4J_URI``, closed on exit.

    The server's notifications ("label does not exist" for a graph without it) are not logged:
    the driver would print each with its whole query.
    """
    driver = open_driver(
        settings.neo4j_uri,
        (settings.neo4j_username, settings.neo4j_password),
        notifications_min_severity="OFF",
    )
    try:
        yield driver
    finally:
        driver.close()
