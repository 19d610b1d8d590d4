"""A customer's list (stored, else live; chosen by the running experiment's arm unless a
strategy is named), why a product is on it, and the products like one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response

from bulk360.apps import experiments
from bulk360.apps.lists import copurchased, live_recommendations, stored_similar, why
from bulk360.errors import Bulk360Error
from bulk360.serve.auth import Guard
from bulk360.serve.models import (
    CACHE_STATUS,
    Key,
    Recommendations,
    SimilarProducts,
    Strategy,
    Why,
    declared_errors,
)
from bulk360.serve.resources import Serving, unavailable

__all__ = ["recommendation_routes"]


def served_list(
    serving: Serving,
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
        raise unavailable(exc) from None
    response.headers["Cache-Status"] = cache_status
    return {
        "customer": customer_id,
        "strategy": chosen,
        **found,
        "recommendation_id": served,
        "experiment": arm[0].name if arm else None,
        "arm": arm[1].name if arm else None,
    }


def recommendation_routes(app: FastAPI, shared: dict[str, Serving], guard: Guard) -> None:
    @app.get(
        "/customers/{customer_id}/recommendations",
        response_model=Recommendations,
        responses={
            200: {"description": "The list, with its id", "headers": CACHE_STATUS},
            **declared_errors(*guard.answers, 404, 503),
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
        return served_list(shared["serving"], response, customer_id, limit, strategy=strategy)

    @app.get(
        "/customers/{customer_id}/recommendations/{product_id}/why",
        response_model=Why,
        responses=declared_errors(*guard.answers, 404, 503),
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
        responses=declared_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
        summary="Products like this one: nearest by node2vec vector, else bought together",
    )
    def similar(product_id: Key, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        serving = shared["serving"]
        try:
            with serving.control() as conn:
                found = stored_similar(conn, product_id, limit)
        except (Bulk360Error, psycopg.Error) as exc:
            raise unavailable(exc) from None
        if found is None:
            found = serving.live(copurchased, product_id, limit)
        if found is None:
            raise HTTPException(404, f"product {product_id} not found")
        return {"product": product_id, **found}
