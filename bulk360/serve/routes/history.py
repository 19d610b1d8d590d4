"""``GET /runs`` and ``GET /runs/{id}``: the audit tables of the control database."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, HTTPException, Path, Query

from bulk360.control import list_runs, show_run
from bulk360.errors import Bulk360Error, NoSuchRun
from bulk360.serve.auth import Guard
from bulk360.serve.models import BIGINT, RunDetail, RunRow, declared_errors
from bulk360.serve.resources import unavailable
from bulk360.settings import Settings

__all__ = ["history_routes"]


def history_routes(app: FastAPI, settings: Settings, guard: Guard) -> None:
    @app.get(
        "/runs",
        response_model=list[RunRow],
        responses=declared_errors(*guard.answers, 503),
        dependencies=guard.dependencies,
    )
    def runs(limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
        try:
            return list_runs(settings, limit)
        except (Bulk360Error, psycopg.Error) as exc:
            raise unavailable(exc) from None

    @app.get(
        "/runs/{run_id}",
        response_model=RunDetail,
        responses=declared_errors(*guard.answers, 404, 503),
        dependencies=guard.dependencies,
    )
    def run(run_id: Annotated[int, Path(ge=1, le=BIGINT)]) -> dict[str, Any]:
        try:
            run_row, tables = show_run(settings, run_id)
        except NoSuchRun:
            raise HTTPException(404, f"no run {run_id}") from None
        except (Bulk360Error, psycopg.Error) as exc:
            raise unavailable(exc) from None
        return {"run": run_row, "tables": tables}
