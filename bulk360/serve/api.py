"""``bulk360 serve``: the HTTP API in front of the graph and the control database (FastAPI).

``GET /`` and the health endpoints for probes (``/health/live``: the process answers;
``/health`` and ``/health/ready``: the control database and the Neo4j database both answer a
query), ``GET /runs`` and ``GET /runs/{id}`` from the audit tables, and
``GET /customers/{id}/recommendations`` from the lists ``bulk360 recommend`` stored, with a live
parameterized Cypher query when no stored list holds the customer, and
``GET /products/{id}/similar``: the nearest products by node2vec vector that a recommendation run
stored, else the products most often bought in the same orders (live Cypher). Every list served
has a recommendation id, and the running experiment's arm chooses its strategy when none is
asked for (``GET /experiments/{name}/customers/{id}/recommendations`` serves a named
experiment's arm); ``POST /events`` records what the customer did with a list (one schema per
kind of event), ``GET /experiments/{name}`` reports the arms. The OpenAPI document
(``/openapi.json``, ``/docs``) declares every answer each endpoint gives. With
``BULK360_API_TOKEN`` set, every endpoint but ``/``, the health endpoints and the documentation
requires ``Authorization: Bearer <token>``. Errors are JSON; nothing returned names a password.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from neo4j import Driver
from neo4j.exceptions import DriverError, Neo4jError
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bulk360 import __version__
from bulk360.apps import experiments
from bulk360.apps.recommend import STRATEGIES, RecommendOptions
from bulk360.control import list_runs, show_run
from bulk360.control.database import no_schema
from bulk360.errors import Bulk360Error, NoSuchRun, one_line
from bulk360.graph import quoted
from bulk360.serve.cache import ListCache, make_store
from bulk360.serve.health import follow_problem, neo4j_driver, neo4j_problem, postgres_problem
from bulk360.serve.metrics import CONTENT_TYPE, scrape
from bulk360.serve.ui import ui_routes
from bulk360.settings import Settings, load_settings

__all__ = ["app_from_environment", "create_app"]

POOL_SIZE = 16
"""Control database connections per worker (FastAPI runs up to 40 requests at once per
worker; the rest wait for a connection)."""

Strategy = Literal["weighted", "copurchase", "pagerank", "community", "node2vec", "popular"]
assert set(Strategy.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]

_BIGINT = 2**63 - 1
# Reads the Authorization header; whether a token is asked for is decided in create_app.
_BEARER = HTTPBearer(auto_error=False, description="The value of BULK360_API_TOKEN.")


class Status(BaseModel):
    status: Literal["ok"]


class Healthy(BaseModel):
    ok: Literal[True]


class Unhealthy(BaseModel):
    ok: Literal[False]
    failed: dict[str, str]
    """``postgres``, ``neo4j`` and (``/health`` only) ``follow``, each with one line saying why."""


class ErrorBody(BaseModel):
    detail: str


class RunRow(BaseModel):
    """A row of ``etl_run_logs``."""

    run_id: int
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    nodes_written: int | None
    relationships_written: int | None
    rows_read: int | None
    rows_rejected: int | None
    rows_orphaned: int | None
    bytes_written: int | None
    import_dir: str | None
    options: dict[str, Any]
    bulk360_version: str | None
    error_text: str | None
    run_uid: UUID | None = None
    resumed_from: int | None = None
    published_at: datetime | None = None
    manifest_sha256: str | None = None
    accepted_schema_changes: list[str] | None = None
    ledger_balanced: bool | None = None
    transaction_retries: int | None = None
    step_seconds: dict[str, float] | None = None


class TableLog(BaseModel):
    """A row of ``etl_table_logs``: one table, label or relationship mapping of a run."""

    log_id: int
    run_id: int
    object_kind: str
    source_name: str | None
    table_name: str | None
    label: str | None
    relationship_type: str | None
    mapping_id: int | None
    status: str
    rows_processed: int
    rows_written: int
    rows_rejected: int
    rows_orphaned: int
    rows_duplicate: int = 0
    rows_fanout: int = 0
    ledger_balanced: bool | None = None
    bytes: int
    seconds: float
    error_text: str | None
    details: dict[str, Any]
    logged_at: datetime


class RunDetail(BaseModel):
    run: RunRow
    tables: list[TableLog]


class Item(BaseModel):
    rank: int
    product: str
    score: float
    cold_start: bool
    reason: str | None = None
    """Why it is on the list (``bought X; 12 customers who bought it bought this``)."""


class PathNode(BaseModel):
    label: str
    key: str | None
    name: str | None


class Why(BaseModel):
    """The shortest path from the customer to the product over the relationships that explain
    a recommendation: nodes from the customer to the product, and the types between them."""

    customer: str
    product: str
    nodes: list[PathNode]
    relationships: list[str]


class SimilarItem(BaseModel):
    rank: int
    product: str
    score: float
    """Cosine similarity of the vectors (embedding), or orders shared (copurchase)."""


class SimilarProducts(BaseModel):
    product: str
    source: Literal["embedding", "copurchase"]
    rec_run_id: int | None
    items: list[SimilarItem]


class Recommendations(BaseModel):
    customer: str
    strategy: Strategy
    source: Literal["stored", "live"]
    rec_run_id: int | None
    items: list[Item]
    recommendation_id: UUID
    """What ``POST /events`` reports the customer's impressions, clicks and purchases against."""
    experiment: str | None = None
    arm: str | None = None
    """The experiment's arm that chose the strategy, when an experiment runs."""


class _Event(BaseModel):
    """What a customer did with a served list (the fields every kind has)."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    """Chosen by the sender: an event sent again with the same id is recorded once."""
    recommendation_id: UUID
    product: Annotated[str, Field(min_length=1, max_length=200, pattern="^[^\x00]+$")]
    occurred_at: AwareDatetime | None = None
    """When it happened (with its UTC offset); when it arrives, if not given."""


class Interaction(_Event):
    """An impression, a click or an add-to-cart: no amount."""

    kind: Literal["impression", "click", "add_to_cart"]


class Purchase(_Event):
    """A purchase, with the order's value."""

    kind: Literal["purchase"]
    amount: Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]


# One schema per kind, told apart by ``kind``: a client generator sees that a purchase has an
# amount and the other events none.
EventIn = Annotated[Interaction | Purchase, Field(discriminator="kind")]


class EventRecorded(BaseModel):
    event_id: UUID
    recorded: bool
    """False when the same event had been recorded before."""


class ValidationProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    detail: list[ValidationProblem]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an endpoint declares, each ``{"detail": "..."}``."""
    meaning = {
        401: "no valid bearer token (only when BULK360_API_TOKEN is set)",
        404: "no such run, customer, product or experiment",
        409: "the event id was recorded before with other content",
        503: "the control database or Neo4j does not answer",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in codes}


def stored_recommendations(
    conn: psycopg.Connection[Any], customer: str, strategy: str, limit: int | None = None
) -> dict[str, Any] | None:
    """The customer's list from the newest succeeded recommendation run that holds one."""
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT r.rec_run_id, r.rank, r.product_key, r.score, r.cold_start, r.reason"
            " FROM recommendations AS r"
            " WHERE r.customer_key = %(customer)s AND r.strategy = %(strategy)s"
            "   AND r.rec_run_id = (SELECT max(x.rec_run_id) FROM recommendations AS x"
            "     JOIN recommendation_runs AS run USING (rec_run_id)"
            "     WHERE run.status = 'succeeded' AND x.customer_key = %(customer)s"
            "       AND x.strategy = %(strategy)s)"
            " ORDER BY r.rank LIMIT %(limit)s",
            {"customer": customer, "strategy": strategy, "limit": limit},
        )
        .fetchall()
    )
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
                "reason": row["reason"],
            }
            for row in rows
        ],
    }


def bought_since(
    driver: Driver,
    database: str,
    customer: str,
    products: list[str],
    options: RecommendOptions,
) -> set[str]:
    """Of a stored list's ``products``, those the customer has bought (since the list was
    computed: a list never holds a product bought before)."""
    key = quoted(options.key_property)
    # A key is text in the lists and may be a number in the graph: both are looked up (a key
    # constraint's index serves either).
    records, _, _ = driver.execute_query(
        f"MATCH (c:{quoted(options.customer_label)}) "
        f"WHERE c.{key} IN [$customer, toInteger($customer)] "
        f"MATCH (c)-[:{quoted(options.purchase_type)}]->(p:{quoted(options.product_label)}) "
        f"WHERE toString(p.{key}) IN $products "
        f"RETURN DISTINCT toString(p.{key}) AS product",
        customer=customer,
        products=products,
        database_=database,
        bookmark_manager_=None,
    )
    return {record["product"] for record in records}


def _without(found: dict[str, Any], gone: set[str]) -> dict[str, Any]:
    """``found`` without the products ``gone``, ranked again from 1."""
    if not gone:
        return found
    kept = [item for item in found["items"] if item["product"] not in gone]
    return {**found, "items": [{**item, "rank": i} for i, item in enumerate(kept, start=1)]}


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
            {
                "rank": i,
                "product": row["product"],
                "score": row["score"],
                "cold_start": cold,
                "reason": "a best seller"
                if cold
                else "bought by customers who engaged with the products you did",
            }
            for i, row in enumerate(rows, start=1)
        ],
    }


def stored_similar(
    conn: psycopg.Connection[Any], product: str, limit: int
) -> dict[str, Any] | None:
    """The product's nearest products from the newest succeeded run that stored them."""
    rows = conn.execute(
        "SELECT s.rec_run_id, s.rank, s.similar_key, s.score FROM product_similarities AS s"
        " WHERE s.product_key = %(product)s"
        "   AND s.rec_run_id = (SELECT max(x.rec_run_id) FROM product_similarities AS x"
        "     JOIN recommendation_runs AS run USING (rec_run_id)"
        "     WHERE run.status = 'succeeded' AND x.product_key = %(product)s)"
        " ORDER BY s.rank LIMIT %(limit)s",
        {"product": product, "limit": limit},
    ).fetchall()
    if not rows:
        return None
    return {
        "source": "embedding",
        "rec_run_id": rows[0][0],
        "items": [{"rank": r[1], "product": r[2], "score": r[3]} for r in rows],
    }


def copurchased(
    driver: Driver, database: str, product: str, limit: int, options: RecommendOptions
) -> dict[str, Any] | None:
    """The products most often in the same orders as ``product``; None when the graph has no
    such product."""
    key, label = quoted(options.key_property), quoted(options.product_label)
    contains = quoted(options.contains_type)
    records, _, _ = driver.execute_query(
        f"MATCH (p:{label}) WHERE toString(p.{key}) = $product "
        f"OPTIONAL MATCH (p)<-[:{contains}]-(o)-[:{contains}]->(other:{label}) WHERE other <> p "
        f"WITH other, count(DISTINCT o) AS shared ORDER BY shared DESC, toString(other.{key}) "
        f"LIMIT $limit RETURN toString(other.{key}) AS product, toFloat(shared) AS score",
        product=product,
        limit=limit,
        database_=database,
        bookmark_manager_=None,
    )
    if not records:
        return None
    found = [r.data() for r in records if r["product"] is not None]
    return {
        "source": "copurchase",
        "rec_run_id": None,
        "items": [{"rank": i, **row} for i, row in enumerate(found, start=1)],
    }


def why(
    driver: Driver, database: str, customer: str, product: str, options: RecommendOptions
) -> dict[str, Any] | None:
    """The shortest path between the customer and the product over purchases, orders and
    categories (either direction, at most 8 steps); None when either is unknown or no path
    joins them."""
    key = quoted(options.key_property)
    types = "|".join(
        quoted(t)
        for t in (
            options.purchase_type,
            options.placed_type,
            options.contains_type,
            options.in_category_type,
        )
    )
    records, _, _ = driver.execute_query(
        f"MATCH (c:{quoted(options.customer_label)}) WHERE toString(c.{key}) = $customer "
        f"MATCH (p:{quoted(options.product_label)}) WHERE toString(p.{key}) = $product "
        f"MATCH path = shortestPath((c)-[:{types}*..8]-(p)) "
        f"RETURN [n IN nodes(path) | {{label: head(labels(n)), key: toString(n.{key}), "
        "name: toString(n.name)}] AS nodes, [r IN relationships(path) | type(r)] AS relationships "
        "LIMIT 1",
        customer=customer,
        product=product,
        database_=database,
        bookmark_manager_=None,
    )
    if not records:
        return None
    return {"customer": customer, "product": product, **records[0].data()}


def _unavailable(exc: BaseException) -> HTTPException:
    return HTTPException(503, one_line(exc))


Key = Annotated[str, Path(min_length=1, max_length=200, pattern="^[^\x00]+$")]
"""A customer or product key in a path (PostgreSQL text cannot hold NUL: such a key could
never match)."""
ExperimentName = Annotated[str, Path(pattern="^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class _Serving:
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
        found = _without(found, gone)
        if ticket is not None and self.cache.put(ticket, strategy, customer, found):
            return found, missed + "; stored"
        return found, missed


def create_app(settings: Settings, options: RecommendOptions | None = None) -> FastAPI:
    """The API for ``settings``; Neo4j and the control database may be down at start (the
    health endpoints say so)."""
    model = options or RecommendOptions()
    shared: dict[str, _Serving] = {}
    token = settings.api_token

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        shared["serving"] = serving = _Serving(settings, model)
        serving.open()
        try:
            yield
        finally:
            serving.close()

    app = FastAPI(title="bulk360", version=__version__, lifespan=lifespan)

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if token is None or not hmac.compare_digest(given, token.encode()):
            raise HTTPException(
                401,
                "a valid bearer token is required: Authorization: Bearer <BULK360_API_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    # Without a token nothing is asked, and the document declares no security scheme.
    guard = _Guard([Depends(require_token)] if token else [], (401,) if token else ())
    _health_routes(app, settings, shared)
    _history_routes(app, settings, guard)
    _metrics_routes(app, settings, guard)
    ui_routes(app, settings)
    _recommendation_routes(app, shared, guard)
    _experiment_routes(app, settings, shared, guard)
    return app


def app_from_environment() -> FastAPI:
    """The API for the settings of the environment (``BULK360_ENV_FILE`` names the file):
    what each ``bulk360 serve --workers N`` worker process serves."""
    return create_app(load_settings())


@dataclass(frozen=True)
class _Guard:
    """What protects the data endpoints: the token's dependency, and its 401 answer."""

    dependencies: list[Any]
    answers: tuple[int, ...]


def _health_routes(app: FastAPI, settings: Settings, shared: dict[str, _Serving]) -> None:
    @app.get("/", response_model=Status)
    def root() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/live", response_model=Healthy, summary="The process answers")
    def live() -> dict[str, bool]:
        return {"ok": True}

    ready_responses: dict[int | str, dict[str, Any]] = {
        503: {"model": Unhealthy, "description": "which dependency does not answer, and why"}
    }

    def problems() -> dict[str, str]:
        failed: dict[str, str] = {}
        postgres = postgres_problem(settings)
        if postgres:
            failed["postgres"] = postgres
        neo4j = neo4j_problem(shared["serving"].driver, settings)
        if neo4j:
            failed["neo4j"] = neo4j
        return failed

    def answer(failed: dict[str, str]) -> Any:
        if failed:
            return JSONResponse({"ok": False, "failed": failed}, status_code=503)
        return {"ok": True}

    @app.get(
        "/health",
        response_model=Healthy,
        responses=ready_responses,
        summary="The control database and the Neo4j database answer, and following keeps up",
    )
    def health() -> Any:
        failed = problems()
        if "postgres" not in failed:
            following, _ = follow_problem(settings)
            if following:
                failed["follow"] = following
        return answer(failed)

    @app.get(
        "/health/ready",
        response_model=Healthy,
        responses=ready_responses,
        summary="The control database and the Neo4j database answer a query",
    )
    def ready() -> Any:
        return answer(problems())


def _metrics_routes(app: FastAPI, settings: Settings, guard: _Guard) -> None:
    @app.get(
        "/metrics",
        summary="The control database's figures in Prometheus's text format",
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "bulk360_up 0 alone when the control database does not answer",
            },
            **_errors(*guard.answers),
        },
        dependencies=guard.dependencies,
    )
    def metrics() -> Response:
        return Response(scrape(settings), media_type=CONTENT_TYPE)


def _history_routes(app: FastAPI, settings: Settings, guard: _Guard) -> None:
    @app.get(
        "/runs",
        response_model=list[RunRow],
        responses=_errors(*guard.answers, 503),
        dependencies=guard.dependencies,
    )
    def runs(limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
        try:
            return list_runs(settings, limit)
        except (Bulk360Error, psycopg.Error) as exc:
            raise _unavailable(exc) from None

    @app.get(
        "/runs/{run_id}",
        response_model=RunDetail,
        responses=_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
    )
    def run(run_id: Annotated[int, Path(ge=1, le=_BIGINT)]) -> dict[str, Any]:
        try:
            run_row, tables = show_run(settings, run_id)
        except NoSuchRun:
            raise HTTPException(404, f"no run {run_id}") from None
        except (Bulk360Error, psycopg.Error) as exc:
            raise _unavailable(exc) from None
        return {"run": run_row, "tables": tables}


_CACHE_STATUS = {
    "Cache-Status": {
        "description": "How the cache answered (RFC 9211): `bulk360; hit`, or `bulk360;"
        " fwd=uri-miss` (`; stored` when the answer is cached now), `bulk360; fwd=bypass`"
        " when nothing is cached",
        "schema": {"type": "string"},
    }
}


def _served_list(
    serving: _Serving,
    response: Response,
    customer_id: str,
    limit: int,
    strategy: str | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """A customer's list with its recommendation id, recorded as served: of ``strategy``, of
    the arm of ``experiment`` (404 when it does not run), or of the running experiment's arm
    when neither is named (else ``weighted``)."""
    try:
        with serving.control() as conn:
            known = [] if strategy else experiments.all_experiments(conn)
            arm = experiments.choose_arm(known, customer_id, experiment, datetime.now(UTC))
            chosen = arm[1].strategy if arm else strategy or "weighted"
            found, cache_status = serving.stored_list(conn, customer_id, chosen)
            if found is None:
                found = serving.live(live_recommendations, customer_id, limit)
            if found is None:
                raise HTTPException(404, f"customer {customer_id} not found")
            found = {**found, "items": found["items"][:limit]}
            served = experiments.record_served(conn, customer_id, chosen, found, arm)
    except experiments.NotRunning as exc:
        raise HTTPException(404, str(exc)) from None
    except (Bulk360Error, psycopg.Error) as exc:
        raise _unavailable(exc) from None
    response.headers["Cache-Status"] = cache_status
    return {
        "customer": customer_id,
        "strategy": chosen,
        **found,
        "recommendation_id": served,
        "experiment": arm[0].name if arm else None,
        "arm": arm[1].name if arm else None,
    }


def _recommendation_routes(app: FastAPI, shared: dict[str, _Serving], guard: _Guard) -> None:
    @app.get(
        "/customers/{customer_id}/recommendations",
        response_model=Recommendations,
        responses={
            200: {"description": "The list, with its id", "headers": _CACHE_STATUS},
            **_errors(*guard.answers, 404, 503),
        },
        dependencies=guard.dependencies,
    )
    def recommendations(
        customer_id: Key,
        response: Response,
        strategy: Annotated[
            Strategy | None,
            Query(
                description="The strategy whose list is served (default: the running "
                "experiment's arm chooses it, else weighted). To serve the arm of a named "
                "experiment: GET /experiments/{name}/customers/{customer_id}/recommendations."
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        return _served_list(shared["serving"], response, customer_id, limit, strategy=strategy)

    @app.get(
        "/customers/{customer_id}/recommendations/{product_id}/why",
        response_model=Why,
        responses=_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
        summary="The shortest path from the customer to the product: why it is recommended",
    )
    def explain(customer_id: Key, product_id: Key) -> dict[str, Any]:
        found = shared["serving"].live(why, customer_id, product_id)
        if found is None:
            raise HTTPException(404, f"no path from customer {customer_id} to product {product_id}")
        return found

    @app.get(
        "/products/{product_id}/similar",
        response_model=SimilarProducts,
        responses=_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
        summary="Products like this one: nearest by node2vec vector, else bought together",
    )
    def similar(product_id: Key, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        serving = shared["serving"]
        try:
            with serving.control() as conn:
                found = stored_similar(conn, product_id, limit)
        except (Bulk360Error, psycopg.Error) as exc:
            raise _unavailable(exc) from None
        if found is None:
            found = serving.live(copurchased, product_id, limit)
        if found is None:
            raise HTTPException(404, f"product {product_id} not found")
        return {"product": product_id, **found}


def _experiment_routes(
    app: FastAPI, settings: Settings, shared: dict[str, _Serving], guard: _Guard
) -> None:
    @app.post(
        "/events",
        response_model=EventRecorded,
        status_code=201,
        responses={
            200: {"model": EventRecorded, "description": "recorded before: nothing changed"},
            400: {"model": ErrorBody, "description": "the body cannot be read (not UTF-8)"},
            404: {
                "model": ErrorBody,
                "description": "no list of this id was served, or it did not hold the product",
            },
            422: {"model": Invalid, "description": "malformed"},
            **_errors(*guard.answers, 409, 503),
        },
        dependencies=guard.dependencies,
        summary="Record an impression, click, add-to-cart or purchase of a served list",
    )
    def event(body: EventIn) -> Any:
        try:
            with shared["serving"].control() as conn:
                new = experiments.record_event(
                    conn,
                    experiments.Event(
                        body.event_id,
                        body.recommendation_id,
                        body.kind,
                        body.product,
                        Decimal(f"{body.amount:.2f}") if isinstance(body, Purchase) else None,
                        body.occurred_at,
                    ),
                )
        except experiments.EventRejected as exc:  # a list or product this API never served
            raise HTTPException(404, str(exc)) from None
        except experiments.EventConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except (Bulk360Error, psycopg.Error) as exc:
            raise _unavailable(exc) from None
        answer = {"event_id": str(body.event_id), "recorded": new}
        return answer if new else JSONResponse(answer, status_code=200)

    @app.get(
        "/experiments/{name}/customers/{customer_id}/recommendations",
        response_model=Recommendations,
        responses={
            200: {"description": "The list of the customer's arm", "headers": _CACHE_STATUS},
            **_errors(*guard.answers, 404, 503),
        },
        dependencies=guard.dependencies,
        summary="The customer's list as the arm of this experiment serves it",
    )
    def arm_recommendations(
        name: ExperimentName,
        customer_id: Key,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        return _served_list(shared["serving"], response, customer_id, limit, experiment=name)

    @app.get(
        "/experiments/{name}",
        response_model=experiments.ExperimentReport,
        responses=_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
        summary="Per arm: customers, CTR, conversion rate, average order value (95% intervals)",
    )
    def experiment_report(name: ExperimentName) -> experiments.ExperimentReport:
        try:
            return experiments.report(settings, name)
        except experiments.NoSuchExperiment as exc:
            raise HTTPException(404, str(exc)) from None
        except (Bulk360Error, psycopg.Error) as exc:
            raise _unavailable(exc) from None
