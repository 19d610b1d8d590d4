"""``GET /`` and the health endpoints for probes: ``/health/live`` (the process answers),
``/health/ready`` (the control database and the Neo4j database both answer a query) and
``/health`` (that, and following keeps up)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bulk360.health import follow_problem, neo4j_problem, postgres_problem
from bulk360.serve.models import Healthy, Status, Unhealthy
from bulk360.serve.resources import Serving
from bulk360.settings import Settings

__all__ = ["health_routes"]


def health_routes(app: FastAPI, settings: Settings, shared: dict[str, Serving]) -> None:
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
