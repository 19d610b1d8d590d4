"""What a failed TLS connection is called, from the exceptions the driver wraps it in."""

from __future__ import annotations

import ssl

from neo4j.exceptions import ServiceUnavailable

from bulk360.graph import tls_problem, unreachable

URI = "neo4j+s://db.example:7687"


def _wrapped(cause: BaseException) -> ServiceUnavailable:
    """A routing failure holding a connection failure caused by ``cause``, as the driver raises."""
    inner = ServiceUnavailable("Couldn't connect to db.example:7687")
    inner.__cause__ = cause
    outer = ServiceUnavailable("Unable to retrieve routing information")
    outer.__cause__ = ExceptionGroup("All routing table requests failed", [inner])
    return outer


def _verify_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_message = message
    return error


def test_an_untrusted_certificate_names_the_fix() -> None:
    found = tls_problem(URI, _wrapped(_verify_error("unable to get local issuer certificate")))
    assert found is not None
    assert found.startswith(f"Neo4j at {URI} has a TLS certificate that is not trusted")
    assert "SSL_CERT_FILE" in found and "+ssc" in found


def test_a_certificate_for_another_host_says_so() -> None:
    message = "Hostname mismatch, certificate is not valid for 'db.example'."
    found = tls_problem(URI, _wrapped(_verify_error(message)))
    assert found is not None and "for another host name" in found and "'db.example'" in found


def test_a_handshake_failure_asks_whether_tls_is_on() -> None:
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    error.reason = "WRONG_VERSION_NUMBER"
    found = tls_problem(URI, _wrapped(error))
    assert found is not None and "WRONG_VERSION_NUMBER" in found and "bolt://" in found


def test_anything_else_is_not_called_tls() -> None:
    refused = _wrapped(ConnectionRefusedError(111, "Connection refused"))
    assert tls_problem(URI, refused) is None
    assert unreachable(URI, refused).startswith(f"Neo4j at {URI} does not answer: ")
    assert "\n" not in unreachable(URI, ServiceUnavailable("two\nlines"))
