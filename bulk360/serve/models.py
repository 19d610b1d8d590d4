"""What the API takes and answers, as pydantic models and annotated parameters: the OpenAPI
document is drawn from them, so every rule a request must follow is stated here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bulk360.apps.strategies import STRATEGIES

__all__ = [
    "BIGINT",
    "CACHE_STATUS",
    "ErrorBody",
    "EventIn",
    "EventRecorded",
    "ExperimentName",
    "Healthy",
    "Interaction",
    "Invalid",
    "Item",
    "Key",
    "PathNode",
    "Purchase",
    "Recommendations",
    "RunDetail",
    "RunRow",
    "SimilarItem",
    "SimilarProducts",
    "Status",
    "Strategy",
    "TableLog",
    "Unhealthy",
    "ValidationProblem",
    "Why",
    "declared_errors",
]


Strategy = Literal["weighted", "copurchase", "pagerank", "community", "node2vec", "popular"]


assert set(Strategy.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]


BIGINT = 2**63 - 1


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


def declared_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an endpoint declares, each ``{"detail": "..."}``."""
    meaning = {
        401: "no valid bearer token (only when BULK360_API_TOKEN is set)",
        404: "no such run, customer, product or experiment",
        409: "the event id was recorded before with other content",
        503: "the control database or Neo4j does not answer",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in codes}


Key = Annotated[str, Path(min_length=1, max_length=200, pattern="^[^\x00]+$")]
"""A customer or product key in a path (PostgreSQL text cannot hold NUL: such a key could
never match)."""


ExperimentName = Annotated[str, Path(pattern="^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


CACHE_STATUS = {
    "Cache-Status": {
        "description": "How the cache answered (RFC 9211): `bulk360; hit`, or `bulk360;"
        " fwd=uri-miss` (`; stored` when the answer is cached now), `bulk360; fwd=bypass`"
        " when nothing is cached",
        "schema": {"type": "string"},
    }
}
