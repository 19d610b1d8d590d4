"""A real Redis (Debian's ``redis-server``, installed by ``scripts/services test-tools``) for a
test: its own process on a free port, nothing saved to disk."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tests.helpers.services import service_missing
from tests.helpers.serving import free_port

__all__ = ["redis_server"]


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server for the test; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server", FileNotFoundError("not installed"))
    assert binary is not None
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    assert server.poll() is None, "redis-server stopped at start"
                    assert time.monotonic() < deadline, "redis-server did not answer in 20 s"
                    time.sleep(0.1)
            client.close()
            yield url
        finally:
            server.terminate()
            server.wait(timeout=20)
