"""``POST /events`` (what a customer did with a served list), a named experiment's arm's list
and ``GET /experiments/{name}``, its report."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response

from bulk360.apps import experiments
from bulk360.errors import Bulk360Error
from bulk360.serve.auth import Guard
from bulk360.serve.models import (
    CACHE_STATUS,
    ErrorBody,
    EventIn,
    EventRecorded,
    ExperimentName,
    Invalid,
    Key,
    Purchase,
    Recommendations,
    declared_errors,
)
from bulk360.serve.resources import Serving, unavailable
from bulk360.serve.routes.recommendations import served_list
from bulk360.settings import Settings

__all__ = ["experiment_routes"]


def experiment_routes(
    app: FastAPI, settings: Settings, shared: dict[str, Serving], guard: Guard
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
            **declared_errors(*guard.answers, 409, 503),
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
            raise unavailable(exc) from None
        answer = {"event_id": str(body.event_id), "recorded": new}
        return answer if new else JSONResponse(answer, status_code=200)

    @app.get(
        "/experiments/{name}/customers/{customer_id}/recommendations",
        response_model=Recommendations,
        responses={
            200: {"description": "The list of the customer's arm", "headers": CACHE_STATUS},
            **declared_errors(*guard.answers, 404, 503),
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
        return served_list(shared["serving"], response, customer_id, limit, experiment=name)

    @app.get(
        "/experiments/{name}",
        response_model=experiments.ExperimentReport,
        responses=declared_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
        summary="Per arm: customers, CTR, conversion rate, average order value (95% intervals)",
    )
    def experiment_report(name: ExperimentName) -> experiments.ExperimentReport:
        try:
            return experiments.report(settings, name)
        except experiments.NoSuchExperiment as exc:
            raise HTTPException(404, str(exc)) from None
        except (Bulk360Error, psycopg.Error) as exc:
            raise unavailable(exc) from None
