"""``/ui``: the run dashboard, server-rendered pages (Jinja2) that ``bulk360 serve`` answers.

* ``/ui`` — the runs: mode, engine, status, start, duration, totals; a failed run's error line;
* ``/ui/runs/{id}`` — one run: its steps as a chart, its ledger per label and per relationship
  mapping with each equation checked, the values changed per table, the schema changes it
  accepted, the run it resumed or was compared with;
* ``/ui/model`` — the graph model as a picture (:mod:`bulk360.plan.picture`);
* ``/ui/customer?id=...`` — a customer's stored recommendations per strategy.

No script and no build step: charts are SVG drawn by the templates. With ``BULK360_API_TOKEN``
set the pages need it as the API does: ``/ui/login`` takes it once in a form (posted to
``/ui/token``) and keeps it in an HttpOnly, SameSite=Strict cookie (an ``Authorization: Bearer`` header works too), so that it is
never in a URL, a log or a page.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import parse_qs

import psycopg
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bulk360.apps.lists import stored_recommendations
from bulk360.apps.recommend import STRATEGIES
from bulk360.control import connect_control, list_runs, show_run
from bulk360.errors import Bulk360Error, NoSuchRun, one_line
from bulk360.modes import counts_changes
from bulk360.settings import Settings

__all__ = ["COOKIE", "ui_routes"]

COOKIE = "bulk360_token"
_BIGINT = 2**63 - 1
_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_DETAIL: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}
_TEMPLATES = Environment(
    loader=FileSystemLoader(FilePath(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _seconds(row: dict[str, Any]) -> float | None:
    start, end = row.get("started_at"), row.get("finished_at")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    return None


def _one_line(text: str | None) -> str:
    """An error as one line (a validation error lists its problems on lines of their own)."""
    return " ".join(line.strip() for line in (text or "").splitlines() if line.strip())


_TEMPLATES.filters["one_line"] = _one_line
_TEMPLATES.filters["number"] = lambda n: "" if n is None else f"{n:,}"
_TEMPLATES.globals["duration"] = _seconds


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_TEMPLATES.get_template(name).render(**values), status_code=status)


# The pipeline's steps in their order (a jsonb object keeps its keys in an order of its own).
_STEPS = ("validate", "extract", "transform", "write", "load", "swap", "record")


def _steps_chart(steps: dict[str, float]) -> list[dict[str, Any]]:
    """The bars of the step chart, in the pipeline's order: each step's share of the longest."""
    longest = max(steps.values(), default=0) or 1
    ordered = sorted(steps, key=lambda s: (_STEPS.index(s) if s in _STEPS else len(_STEPS), s))
    return [
        {"step": step, "seconds": steps[step], "width": round(400 * steps[step] / longest, 1)}
        for step in ordered
    ]


def ui_routes(app: FastAPI, settings: Settings) -> None:
    """Add the pages to ``app``; with a token set, each needs it (cookie or header)."""
    token = settings.api_token

    def allowed(request: Request) -> bool:
        if token is None:
            return True
        header = request.headers.get("authorization", "")
        given = request.cookies.get(COOKIE) or header.removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def to_login() -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    def unavailable(exc: BaseException) -> HTMLResponse:
        return _page("error.html", 503, title="unavailable", message=one_line(exc))

    Answers = dict[int | str, dict[str, Any]]
    guarded: Answers = {303: {"description": "to /ui/login: a token is set and was not given"}}
    failing: Answers = {
        503: {"content": _HTML, "description": "the control database does not answer"}
    }

    @app.get(
        "/ui",
        summary="The run dashboard: the latest runs",
        response_class=HTMLResponse,
        responses={200: {"content": _HTML}, **guarded, **failing},
    )
    def runs_page(request: Request) -> Response:
        if not allowed(request):
            return to_login()
        try:
            rows = list_runs(settings, 50)
        except (Bulk360Error, psycopg.Error) as exc:
            return unavailable(exc)
        return _page("runs.html", runs=rows, token=token is not None)

    @app.get(
        "/ui/runs/{run_id}",
        summary="One run: steps, ledger per label and mapping, values changed",
        response_class=HTMLResponse,
        responses={
            200: {"content": _HTML},
            404: {"content": _HTML, "description": "no such run"},
            **guarded,
            **failing,
        },
    )
    def run_page(request: Request, run_id: Annotated[int, Path(ge=1, le=_BIGINT)]) -> Response:
        if not allowed(request):
            return to_login()
        try:
            run, tables = show_run(settings, run_id)
        except NoSuchRun:
            return _page("error.html", 404, title="no such run", message=f"no run {run_id}")
        except (Bulk360Error, psycopg.Error) as exc:
            return unavailable(exc)
        return _page(
            "run.html",
            run=run,
            counts_changes=counts_changes(run["mode"]),
            steps=_steps_chart(run.get("step_seconds") or {}),
            labels=[t for t in tables if t["object_kind"] == "node"],
            mappings=[t for t in tables if t["object_kind"] == "relationship"],
            sources=[t for t in tables if t["object_kind"] == "table"],
            token=token is not None,
        )

    @app.get(
        "/ui/model",
        summary="The graph model as a picture, with the newest run's counts",
        response_class=HTMLResponse,
        responses={200: {"content": _HTML}, **guarded, **failing},
    )
    def model_page(request: Request) -> Response:
        if not allowed(request):
            return to_login()
        from bulk360.control.history import graph_counts
        from bulk360.plan import prepare_plan
        from bulk360.plan.picture import Counts, svg

        try:
            plan = prepare_plan(settings)
            picture = svg(plan, Counts(*graph_counts(settings)))
        except (Bulk360Error, psycopg.Error) as exc:
            return unavailable(exc)
        # The SVG's own XML prologue and doctype cannot stand inside HTML.
        picture = picture[picture.index("<svg") :]
        return _page("model.html", picture=picture, token=token is not None)

    @app.get(
        "/ui/customer",
        summary="A customer's stored recommendations, per strategy (the header's form)",
        response_class=HTMLResponse,
        responses={200: {"content": _HTML}, **guarded, **failing},
    )
    def customer_page(
        request: Request,
        customer_id: Annotated[
            str, Query(alias="id", min_length=1, max_length=200, pattern="^[^\x00]+$")
        ],
    ) -> Response:
        if not allowed(request):
            return to_login()
        try:
            with connect_control(settings) as conn:
                lists = {
                    strategy: stored_recommendations(conn, customer_id, strategy, 10)
                    for strategy in STRATEGIES
                }
        except (Bulk360Error, psycopg.Error) as exc:
            return unavailable(exc)
        return _page("customer.html", customer=customer_id, lists=lists, token=token is not None)

    @app.get(
        "/ui/login",
        summary="The form that takes the API token for the pages",
        response_class=HTMLResponse,
        responses={200: {"content": _HTML}},
    )
    def login_page() -> Response:
        return _page("login.html", wrong=False)

    @app.post(
        "/ui/token",
        summary="Keep the API token in a cookie for the pages (the login form's target)",
        response_class=HTMLResponse,
        responses={
            200: {"content": _HTML, "description": "the form again: not the token"},
            303: {"description": "to /ui, the token kept in an HttpOnly cookie"},
            415: {
                "content": _DETAIL,
                "description": "not a form (application/x-www-form-urlencoded)",
            },
            422: {"content": _DETAIL, "description": "a form without its token field"},
        },
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"token": {"type": "string"}},
                            "required": ["token"],
                        }
                    }
                },
                "required": True,
            }
        },
    )
    async def login(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return JSONResponse({"detail": "the token comes as a form"}, status_code=415)
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if "token" not in form:
            return JSONResponse({"detail": "the form has no token field"}, status_code=422)
        given = form["token"][0]
        if token is None:
            return RedirectResponse("/ui", status_code=303)  # no token: nothing to keep
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _page("login.html", wrong=True)
        answer = RedirectResponse("/ui", status_code=303)
        answer.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/ui")
        return answer
