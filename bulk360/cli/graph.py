"""``bulk360 verify``, ``query``, ``serve`` and ``check``: what is built on the graph and how
to look at it."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bulk360.cli.root import app, console, state


@app.command("verify")
def verify_command(ctx: typer.Context) -> None:
    """Compare the graph's label and relationship counts with the newest run's manifest."""
    from bulk360.apps.verify import compare_counts, graph_manifest
    from bulk360.errors import IntegrityError
    from bulk360.graph import connect_graph

    settings = state(ctx).settings()
    manifest = graph_manifest(settings)
    with connect_graph(settings) as driver:
        checks = compare_counts(driver, settings.neo4j_database, manifest)
    table = Table(title=f"graph vs {manifest}")
    for column in ("kind", "name", "manifest", "graph", ""):
        table.add_column(column)
    for check in checks:
        table.add_row(
            check.kind,
            check.name,
            f"{check.expected:,}",
            f"{check.actual:,}",
            "ok" if check.ok else "DIFFERS",
        )
    console.print(table)
    wrong = [c for c in checks if not c.ok]
    if wrong:
        raise IntegrityError(
            f"{len(wrong)} count(s) differ from the manifest: "
            + ", ".join(f"{c.name} {c.actual} (expected {c.expected})" for c in wrong)
        )
    console.print("graph matches the manifest")


@app.command("query")
def query_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Question name or number.")] = None,
    all_questions: Annotated[bool, typer.Option("--all", help="Run every question.")] = False,
    sample: Annotated[str, typer.Option(help="Which sample's questions.")] = "customer360",
    reference_date: Annotated[
        str | None, typer.Option(help="Reference date (ISO) for 'recent'.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Customer for the journey question.")] = None,
    limit: Annotated[int, typer.Option(help="Rows shown per question.")] = 20,
) -> None:
    """Run the shipped analytics questions against the graph."""
    from bulk360.apps.analytics import find_question, questions, run_question
    from bulk360.graph import connect_graph

    if not all_questions and name is None:
        for question in questions(sample):
            console.print(
                f"{question.number:>2} {question.name:<20} {question.title}", highlight=False
            )
        return
    chosen = questions(sample) if all_questions else [find_question(name or "", sample)]
    settings = state(ctx).settings()
    with connect_graph(settings) as driver:
        for question in chosen:
            keys, rows = run_question(
                driver,
                question,
                settings.neo4j_database,
                reference_date=reference_date,
                email=email,
            )
            table = Table(title=f"{question.number}. {question.title}", title_justify="left")
            for key in keys:
                table.add_column(key)
            for row in rows[:limit]:
                table.add_row(*[_cell(row[k]) for k in keys])
            table.caption = f"{len(rows)} rows"
            console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes (each with its Neo4j driver, control database pool and, "
            "without BULK360_REDIS_URL, its own cache).",
        ),
    ] = 1,
    cache: Annotated[
        bool,
        typer.Option(help="Cache recommendation lists (--no-cache: read them on each request)."),
    ] = True,
    insecure: Annotated[
        bool,
        typer.Option(help="Serve on a non-loopback address without BULK360_API_TOKEN."),
    ] = False,
) -> None:
    """Serve the HTTP API (health, run history, recommendations; docs at /docs)."""
    import os

    import uvicorn

    from bulk360.errors import ConfigError
    from bulk360.graph import bolt_uri

    settings = state(ctx).settings()
    if not settings.api_token and not _loopback(host) and not insecure:
        raise ConfigError(
            f"refusing to serve on {host} without a token: set BULK360_API_TOKEN (clients then "
            "send Authorization: Bearer <token>), or pass --insecure to serve it open"
        )
    bolt_uri(settings.neo4j_uri)  # a wrong scheme is one line now, not an error per request
    # Each worker reads its settings again, from the same file and these choices.
    env_file = state(ctx).env_file
    if env_file is not None:
        os.environ["BULK360_ENV_FILE"] = str(env_file.resolve())
    if not cache:
        os.environ["BULK360_API_CACHE_SECONDS"] = "0"
    uvicorn.run(
        "bulk360.serve.api:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command("check")
def check_command(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(help="Base URL of the running bulk360 API (default: BULK360_API_URL)."),
    ] = None,
) -> None:
    """Verify the deployment end to end: services, last run, graph counts, API."""
    from bulk360.apps.check import run_checks
    from bulk360.errors import CheckFailed

    settings = state(ctx).settings()
    checks = run_checks(settings, api_url or settings.secret("BULK360_API_URL"))
    for check in checks:
        mark = {True: "[green]ok  [/]", False: "[bold red]FAIL[/]", None: "[dim]skip[/]"}[check.ok]
        console.print(f"{mark} {check.name:<18} {escape(check.detail)}", highlight=False)
    failed = [c.name for c in checks if c.ok is False]
    if failed:
        raise CheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}")
    console.print("deployment is healthy")
