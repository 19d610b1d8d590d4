"""``GET /metrics``: the control database's figures in Prometheus's text format."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from bulk360.serve.auth import Guard
from bulk360.serve.metrics import CONTENT_TYPE, scrape
from bulk360.serve.models import declared_errors
from bulk360.settings import Settings

__all__ = ["metrics_routes"]


def metrics_routes(app: FastAPI, settings: Settings, guard: Guard) -> None:
    @app.get(
        "/metrics",
        summary="The control database's figures in Prometheus's text format",
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "bulk360_up 0 alone when the control database does not answer",
            },
            **declared_errors(*guard.answers),
        },
        dependencies=guard.dependencies,
    )
    def metrics() -> Response:
        return Response(scrape(settings), media_type=CONTENT_TYPE)
