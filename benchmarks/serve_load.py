"""The HTTP API under load: ``bulk360 serve`` with and without its cache, on 1 and 2 workers.

Each configuration is a fresh ``bulk360 serve`` on a free loopback port; ``--clients``
concurrent clients (one asyncio process, keep-alive connections) send requests for
``--seconds``: 80% a customer's recommendations (customers drawn so that a fifth of them get
four fifths of the requests, as shops see), 15% a product's similar products, and after one
list in four an impression event against its recommendation id (``POST /events``). Every
answer must be a 2xx: anything else, or a connection error, counts as an error. Reported per
configuration: requests/s, p50/p95/p99 latency, errors, and the share of lists the cache
answered (its ``Cache-Status`` header). The client (aiohttp, one process) runs on the same
machine as the server and takes its share of the CPU.

Needs a control database holding a recommendation run (``make demo SAMPLE=ecommerce``).

    python -m benchmarks.serve_load [--seconds 30] [--clients 64] [--redis-url redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bulk360.control import connect_control
from bulk360.errors import ConfigError
from bulk360.settings import Settings, load_settings

RESULTS = Path(__file__).parent / "results" / "serve_load.json"


@dataclass(frozen=True)
class Setup:
    workers: int
    cache: bool
    redis_url: str | None = None

    @property
    def name(self) -> str:
        where = "Redis" if self.redis_url else "memory"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, " + (
            f"cache ({where})" if self.cache else "no cache"
        )


@dataclass(frozen=True)
class Load:
    setup: str
    seconds: float
    clients: int
    requests: int
    errors: int
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    lists: int
    cache_hits: int
    first_errors: tuple[str, ...] = ()


def _keys(settings: Settings) -> tuple[list[str], list[str]]:
    """Customers with stored lists, and products: what the clients ask for."""
    with connect_control(settings) as conn:
        customers = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT customer_key FROM recommendations ORDER BY 1 LIMIT 2000"
            ).fetchall()
        ]
        products = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT product_key FROM recommendations ORDER BY 1 LIMIT 500"
            ).fetchall()
        ]
    if not customers:
        raise ConfigError(
            f"the control database {settings.etl_db_name} holds no recommendation lists: run "
            "`make demo SAMPLE=ecommerce` (or bulk360 recommend) first"
        )
    return customers, products


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(share * (len(sorted_values) - 1)))
    return sorted_values[index]


async def _drive(
    url: str,
    customers: list[str],
    products: list[str],
    seconds: float,
    clients: int,
    seed: int,
    headers: dict[str, str],
) -> tuple[list[float], list[str], dict[str, int]]:
    """The clients' loop; latencies in ms, errors, and the counts of requests, lists served
    and lists the cache answered. (aiohttp: httpx's client slows down past a few dozen
    connections and would measure itself.)"""
    hot = customers[: max(1, len(customers) // 5)]
    latencies: list[float] = []
    errors: list[str] = []
    counts = {"requests": 0, "lists": 0, "hits": 0}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        url, connector=connector, timeout=timeout, headers=headers
    ) as client:
        deadline = time.perf_counter() + seconds

        async def one(
            path: str, body: dict[str, object] | None = None
        ) -> tuple[dict[str, Any], str] | None:
            counts["requests"] += 1
            started = time.perf_counter()
            try:
                async with client.request("GET" if body is None else "POST", path, json=body) as r:
                    text = await r.text()
                    status, cache = r.status, r.headers.get("Cache-Status", "")
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"{path}: {type(exc).__name__}")
                return None
            latencies.append((time.perf_counter() - started) * 1000)
            if not 200 <= status < 300:
                errors.append(f"{path}: {status} {text[:200]}")
                return None
            return json.loads(text), cache

        async def worker(n: int) -> None:
            draw = random.Random(seed * 1000 + n)
            while time.perf_counter() < deadline:
                if draw.random() < 0.80:
                    customer = draw.choice(hot if draw.random() < 0.8 else customers)
                    answer = await one(f"/customers/{customer}/recommendations?strategy=weighted")
                    if answer is None:
                        continue
                    listed, cache = answer
                    counts["lists"] += 1
                    counts["hits"] += cache.endswith("; hit")
                    if listed["items"] and draw.random() < 0.25:
                        await one(
                            "/events",
                            {
                                "event_id": str(uuid.uuid4()),
                                "recommendation_id": listed["recommendation_id"],
                                "kind": "impression",
                                "product": listed["items"][0]["product"],
                            },
                        )
                else:
                    await one(f"/products/{draw.choice(products)}/similar")

        await asyncio.gather(*(worker(n) for n in range(clients)))
    return latencies, errors, counts


def measure(
    settings: Settings,
    setup: Setup,
    seconds: float = 30.0,
    clients: int = 64,
    seed: int = 1,
    environment: Mapping[str, str] | None = None,
) -> Load:
    """Serve with ``setup`` (in ``environment``, default this process's, which must name the
    same control database as ``settings``) and drive it for ``seconds``."""
    customers, products = _keys(settings)
    port = _free_port()
    env = dict(os.environ if environment is None else environment)
    env.pop("BULK360_REDIS_URL", None)
    env.pop("BULK360_API_CACHE_SECONDS", None)
    if setup.redis_url:
        env["BULK360_REDIS_URL"] = setup.redis_url
    command = [sys.executable, "-m", "bulk360", "serve", "--port", str(port)]
    command += ["--workers", str(setup.workers), *([] if setup.cache else ["--no-cache"])]
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(url, server, log, setup.workers)
            started = time.perf_counter()
            latencies, errors, counts = asyncio.run(
                _drive(url, customers, products, seconds, clients, seed, headers)
            )
            took = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies.sort()
    return Load(
        setup=setup.name,
        seconds=round(took, 2),
        clients=clients,
        requests=counts["requests"],
        errors=len(errors),
        requests_per_second=round(counts["requests"] / took, 1),
        p50_ms=round(_percentile(latencies, 0.50), 2),
        p95_ms=round(_percentile(latencies, 0.95), 2),
        p99_ms=round(_percentile(latencies, 0.99), 2),
        lists=counts["lists"],
        cache_hits=counts["hits"],
        first_errors=tuple(errors[:5]),
    )


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: object, workers: int) -> None:
    """Until every worker answers (each listens for the cache's notifications first)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"bulk360 serve stopped with exit code {server.returncode}")
        try:
            ready = [httpx.get(url + "/health/ready", timeout=5).is_success for _ in range(workers)]
            if all(ready):
                time.sleep(1.0)  # the listeners connect just after start
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError("bulk360 serve did not answer within 90 s")


def table(loads: list[Load]) -> str:
    lines = [
        "| setup | requests/s | p50 ms | p95 ms | p99 ms | requests | errors | lists from cache |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in loads:
        share = f"{load.cache_hits / load.lists:.0%}" if load.lists else "-"
        lines.append(
            f"| {load.setup} | {load.requests_per_second:,.0f} | {load.p50_ms} | {load.p95_ms}"
            f" | {load.p99_ms} | {load.requests:,} | {load.errors} | {share} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-url", help="also measure 2 workers sharing this Redis")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = load_settings()
    setups = [Setup(1, False), Setup(1, True), Setup(2, False), Setup(2, True)]
    if args.redis_url:
        setups.append(Setup(2, True, args.redis_url))
    loads = []
    for setup in setups:
        load = measure(settings, setup, args.seconds, args.clients, args.seed)
        print(f"{setup.name}: {load.requests_per_second:,.0f} requests/s", flush=True)
        loads.append(load)
    print(table(loads))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([asdict(load) for load in loads], indent=2) + "\n")


if __name__ == "__main__":
    main()
