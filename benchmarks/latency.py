"""A TCP proxy on loopback that delays every byte by a one-way delay: Neo4j at a distance.

The benchmark and the tests put it between bulk360 and the local Neo4j to measure and test
Bolt as it is used against Neo4j Aura, tens of milliseconds away::

    with LatencyProxy("127.0.0.1", 7687, one_way_ms=10) as proxy:   # a 20 ms round trip
        settings = replace(settings, neo4j_uri=proxy.uri)

Each direction of each connection is a pipe: what arrives is stamped, then written out when
its delay has passed, in order, without waiting for the other side; so the link has latency
but no window (a writer that keeps several transactions in flight is not slowed by it). An
optional ``bytes_per_second`` caps each direction's bandwidth. :meth:`LatencyProxy.drop`
cuts every open connection (a network failure), and :meth:`LatencyProxy.refuse` makes new
ones fail for a while.

Run as ``python -m benchmarks.latency LISTEN_PORT TARGET_PORT ONE_WAY_MS`` to keep one open.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from types import TracebackType

__all__ = ["LatencyProxy"]

_CHUNK = 1 << 16


class LatencyProxy:
    """Forwards a loopback port to ``host:port`` with ``one_way_ms`` of delay each way."""

    def __init__(
        self,
        host: str,
        port: int,
        one_way_ms: float,
        bytes_per_second: float | None = None,
        listen_port: int = 0,
    ) -> None:
        self.target = (host, port)
        self.delay = one_way_ms / 1000
        self.bytes_per_second = bytes_per_second
        self._listen_port = listen_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._refuse_until = 0.0
        self.connections = 0
        """Connections accepted so far."""

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def round_trip_ms(self) -> float:
        return 2000 * self.delay

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._server = self._call(self._start())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def drop(self) -> int:
        """Cut every open connection at once; returns how many were cut."""
        return self._call(self._drop())

    def refuse(self, seconds: float) -> None:
        """Close new connections as soon as they are accepted for ``seconds``."""
        self._refuse_until = time.monotonic() + seconds

    # ---- inside the event loop ---------------------------------------------------------

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", self._listen_port)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._drop()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _drop(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        self._writers.clear()
        return len(writers) // 2

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:  # the proxy stops
            writer.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        for w in (writer, up_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._writers.add(w)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk delivered ``delay`` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    writer.write_eof() if writer.can_write_eof() else None
                    return
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        free_at = 0.0
        try:
            while data := await reader.read(_CHUNK):
                now = self._loop.time()
                if self.bytes_per_second:
                    free_at = max(free_at, now) + len(data) / self.bytes_per_second
                    now = free_at
                queue.put_nowait((now + self.delay, data))
            queue.put_nowait((0.0, b""))
            await sender
        finally:
            sender.cancel()
            writer.transport.abort()


def main() -> None:
    listen, target, one_way = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    with LatencyProxy("127.0.0.1", target, one_way, listen_port=listen) as proxy:
        print(f"{proxy.uri} -> 127.0.0.1:{target}, {proxy.round_trip_ms:g} ms round trip")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
