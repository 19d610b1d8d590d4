"""``bulk360 serve``: the HTTP API in front of the graph and the control database (FastAPI).

``GET /`` and ``GET /health`` for probes, ``GET /runs`` and ``GET /runs/{id}`` from the audit
tables, and ``GET /customers/{id}/recommendations`` from the lists ``bulk360 recommend`` stored,
with a live parameterized Cypher query when no stored list holds the customer. OpenAPI docs are
at ``/docs``. Errors are JSON; nothing returned names a password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import psycopg
from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from neo4j import Driver, GraphDatabase
from neo4j.exceptions import DriverError, Neo4jError
from psycopg.rows import dict_row

from bulk360 import __version__
from bulk360.control import connect_control, list_runs, show_run
from bulk360.errors import Bulk360Error, one_line
from bulk360.graph import quoted
from bulk360.recommend import STRATEGIES, RecommendOptions
from bulk360.settings import Settings

__all__ = ["create_app"]

Strategy = Literal["weighted", "copurchase", "pagerank", "community", "popular"]
assert set(Strategy.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]


def stored_recommendations(
    settings: Settings, customer: str, strategy: str, limit: int
) -> dict[str, Any] | None:
    """The customer's list from the newest succeeded recommendation run that holds one."""
    with connect_control(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(
            "SELECT r.rec_run_id, r.rank, r.product_key, r.score, r.cold_start"
            " FROM recommendations AS r"
            " WHERE r.customer_key = %(customer)s AND r.strategy = %(strategy)s"
            "   AND r.rec_run_id = (SELECT max(x.rec_run_id) FROM recommendations AS x"
            "     JOIN recommendation_runs AS run USING (rec_run_id)"
            "     WHERE run.status = 'succeeded' AND x.customer_key = %(customer)s"
            "       AND x.strategy = %(strategy)s)"
            " ORDER BY r.rank LIMIT %(limit)s",
            {"customer": customer, "strategy": strategy, "limit": limit},
        ).fetchall()
    if not rows:
        return None
    return {
        "source": "stored",
        "rec_run_id": rows[0]["rec_run_id"],
        "items": [
            {
                "rank": row["rank"],
                "product": row["product_key"],
                "score": row["score"],
                "cold_start": row["cold_start"],
            }
            for row in rows
        ],
    }


def live_recommendations(
    driver: Driver, database: str, customer: str, limit: int, options: RecommendOptions
) -> dict[str, Any] | None:
    """Products bought by customers who engaged with the same products, else popular ones.

    None when the graph has no such customer. Labels and types come from ``options``; the
    customer and the limit are query parameters.
    """
    key = quoted(options.key_property)
    customer_label, product = quoted(options.customer_label), quoted(options.product_label)
    events = "|".join(quoted(t) for t in options.weights)
    purchased = quoted(options.purchase_type)
    find = f"MATCH (c:{customer_label}) WHERE toString(c.{key}) = $customer "
    bought = (
        f"OPTIONAL MATCH (c)-[:{purchased}]->(b:{product}) WITH c, collect(DISTINCT b) AS bought "
    )

    def query(cypher: str) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(
            cypher, customer=customer, limit=limit, database_=database, bookmark_manager_=None
        )
        return [r.data() for r in records]

    if not query(find + "RETURN c LIMIT 1"):
        return None
    neighbours = query(
        find + bought + f"MATCH (c)-[:{events}]->(:{product})<-[:{events}]-(other:{customer_label})"
        f"-[:{purchased}]->(p:{product}) WHERE other <> c AND NOT p IN bought "
        f"WITH p, count(*) AS score ORDER BY score DESC, toString(p.{key}) LIMIT $limit "
        f"RETURN toString(p.{key}) AS product, toFloat(score) AS score"
    )
    cold = not neighbours
    rows = neighbours or query(
        find
        + bought
        + f"MATCH (:{customer_label})-[r:{purchased}]->(p:{product}) WHERE NOT p IN bought "
        f"WITH p, count(r) AS score ORDER BY score DESC, toString(p.{key}) LIMIT $limit "
        f"RETURN toString(p.{key}) AS product, toFloat(score) AS score"
    )
    return {
        "source": "live",
        "rec_run_id": None,
        "items": [
            {"rank": i, "product": row["product"], "score": row["score"], "cold_start": cold}
            for i, row in enumerate(rows, start=1)
        ],
    }


def create_app(settings: Settings, options: RecommendOptions | None = None) -> FastAPI:
    """The API for ``settings``; Neo4j may be down at start (``/health`` says so)."""
    model = options or RecommendOptions()
    graph: dict[str, Driver] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        graph["driver"] = GraphDatabase.driver(
            settings.neo4j_uri,
            auth=(settings.neo4j_username, settings.neo4j_password),
            connection_timeout=5,
            max_transaction_retry_time=0,
        )
        try:
            yield
        finally:
            graph["driver"].close()

    app = FastAPI(title="bulk360", version=__version__, lifespan=lifespan)

    @app.get("/")
    def root() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health", responses={503: {"description": "PostgreSQL or Neo4j does not answer"}})
    def health() -> JSONResponse:
        failed: dict[str, str] = {}
        try:
            with connect_control(settings) as conn:
                conn.execute("SELECT 1")
        except (Bulk360Error, psycopg.Error) as exc:
            failed["postgres"] = one_line(exc)
        try:
            graph["driver"].verify_connectivity()
        except Exception as exc:  # any driver failure means Neo4j does not answer
            failed["neo4j"] = one_line(exc)
        if failed:
            return JSONResponse({"ok": False, "failed": failed}, status_code=503)
        return JSONResponse({"ok": True})

    @app.get("/runs")
    def runs(limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
        return list_runs(settings, limit)

    @app.get("/runs/{run_id}")
    def run(run_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
        try:
            run_row, tables = show_run(settings, run_id)
        except Bulk360Error:
            raise HTTPException(404, f"no run {run_id}") from None
        return {"run": run_row, "tables": tables}

    @app.get("/customers/{customer_id}/recommendations")
    def recommendations(
        customer_id: Annotated[str, Path(min_length=1, max_length=200)],
        strategy: Strategy = "weighted",
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        found = stored_recommendations(settings, customer_id, strategy, limit)
        if found is None:
            try:
                found = live_recommendations(
                    graph["driver"], settings.neo4j_database, customer_id, limit, model
                )
            except (Neo4jError, DriverError) as exc:
                raise HTTPException(503, f"Neo4j does not answer: {one_line(exc)}") from None
        if found is None:
            raise HTTPException(404, f"customer {customer_id} not found")
        return {"customer": customer_id, "strategy": strategy, **found}

    return app
