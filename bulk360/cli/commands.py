"""The commands of ``bulk360``: each parses options, calls one library function, prints."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bulk360.analytics import find_question, questions, run_question
from bulk360.check import run_checks
from bulk360.cli import app, console, state
from bulk360.cli.reporting import ConsoleReporter, summary_footer, summary_table
from bulk360.control import init_schema, list_runs, show_run
from bulk360.engines import ENGINES
from bulk360.errors import CheckFailed, ConfigError, IntegrityError, SchemaDrift
from bulk360.graph import bolt_uri, connect_graph
from bulk360.ids import IdRange
from bulk360.pipeline import MODES, RunOptions, prepare_plan, run
from bulk360.recommend import DEFAULT_WEIGHTS, STRATEGIES, RecommendOptions, recommend
from bulk360.samples import available_samples, load_sample
from bulk360.verify import compare_counts, graph_manifest

sample_app = typer.Typer(help="Sample datasets.", no_args_is_help=True)
app.add_typer(sample_app, name="sample")


@app.command("init")
def init_command(ctx: typer.Context) -> None:
    """Create or migrate the control schema in the control database (idempotent)."""
    applied = init_schema(state(ctx).settings())
    console.print(f"applied {', '.join(applied)}" if applied else "control schema is up to date")


@sample_app.command("load")
def sample_load_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="customer360 or ecommerce")],
    scale: Annotated[
        float | None,
        typer.Option(
            help="Generate at this scale instead of the sample's own size "
            "(1 ≈ a million rows in all, 5, 10, 20 ...), inside PostgreSQL."
        ),
    ] = None,
    database_prefix: Annotated[
        str, typer.Option(help="Name the source databases <prefix><name>, e.g. bench_.")
    ] = "",
) -> None:
    """Create and fill a sample's source databases and write its control rows."""
    loaded = load_sample(state(ctx).settings(), name, scale, database_prefix)
    for database, tables in loaded.databases.items():
        rows = ", ".join(f"{t} {n:,}" for t, n in tables.items())
        console.print(f"{database}: {rows}", highlight=False)
    console.print(f"control rows of sample '{name}' written")


@sample_app.command("list")
def sample_list_command() -> None:
    """List the samples that can be loaded."""
    for name in available_samples():
        console.print(name)


@app.command("plan")
def plan_command(ctx: typer.Context) -> None:
    """Print what a run would read and build, without writing anything."""
    plan = prepare_plan(state(ctx).settings())
    for table in plan.tables:
        target = (
            f":{table.label} key ({', '.join(table.key_columns)})"
            if table.label
            else "relationships only"
        )
        console.print(
            f"[bold]{table.source}.{table.schema}.{table.table}[/] -> {target}", highlight=False
        )
        console.print(f"  kept:     {', '.join(c.header for c in table.columns)}", highlight=False)
        if table.excluded:
            console.print(f"  excluded: {', '.join(table.excluded)}", highlight=False)
        # A run numbers node ids from the label's range (see bulk360.ids); shown from 0.
        reader = table.copy_sql(IdRange(0, 0)).as_string(None)
        console.print(f"  reader:   {reader}", highlight=False, soft_wrap=True)
    for rel in plan.relationships:
        m = rel.mapping
        how = (
            f"through {m.link_source}.{m.link_table} AS {m.link_alias}"
            if m.link_table
            else "direct"
        )
        cross = rel.from_table.source != rel.to_table.source
        console.print(
            f"[bold](:{m.from_label})-[:{m.relationship_type}]->(:{m.to_label})[/] "
            f"#{m.mapping_id} {how}{', cross-database' if cross else ''}: {m.join_condition}"
            + (f"; properties {', '.join(m.property_columns)}" if m.property_columns else ""),
            highlight=False,
        )
    if plan.schema_changes:
        console.print("[bold]schema changes since the last succeeded run[/]")
        for change in plan.schema_changes:
            mark = "STOPS A RUN" if change.blocking else "note"
            console.print(f"  {mark}: {escape(change.text)}", highlight=False, soft_wrap=True)
    if plan.blocking_changes:
        raise SchemaDrift([change.text for change in plan.blocking_changes])


@app.command("run")
def run_command(
    ctx: typer.Context,
    mode: Annotated[
        str,
        typer.Option(
            help="admin: CSV + neo4j-admin (server stopped); bolt: write over Bolt into a "
            "running server (Aura); sync: write over Bolt only what changed since the run that "
            "built the graph; csv: stop after the files."
        ),
    ] = "admin",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Parallel COPY readers (and Bolt writers).")
    ] = 4,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing Neo4j database (admin mode).")
    ] = False,
    tolerance: Annotated[int, typer.Option(min=0, help="Bad entries neo4j-admin may report.")] = 0,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Rows per UNWIND transaction (bolt mode).")
    ] = RunOptions.batch_size,
    clear: Annotated[
        bool, typer.Option(help="Delete every node and relationship first (bolt mode).")
    ] = False,
    retry_seconds: Annotated[
        float,
        typer.Option(min=0, help="How long a failing transaction is retried (bolt mode)."),
    ] = RunOptions.retry_seconds,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="[RUN_ID]",
            help="Resume a failed run (default: the newest): its own mode and options; only "
            "the load and the records are repeated when its import folder was published.",
        ),
    ] = None,
    accept_schema_changes: Annotated[
        bool,
        typer.Option(help="Let the run through although mapped tables changed (recorded)."),
    ] = False,
    strict_values: Annotated[
        bool,
        typer.Option(help="Fail instead of changing values Neo4j cannot hold as they are."),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(help="Sync mode: clear the graph and write everything (no comparison)."),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="local: COPY readers and Polars joins in this process; spark: JDBC reads "
            "and Spark joins on a Spark cluster (pip install 'bulk360[spark]')."
        ),
    ] = "local",
    spark_master: Annotated[
        str, typer.Option(help="Spark master URL (--engine spark), e.g. spark://host:7077.")
    ] = RunOptions.spark_master,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE", help="A Spark setting (--engine spark); may be repeated."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (no steps, no table).")
    ] = False,
) -> None:
    """Build the graph: read every mapped table, join the relationships, load Neo4j."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not '{engine}'")
    if engine != "spark" and (spark_conf or spark_master != RunOptions.spark_master):
        raise ConfigError("--spark-master and --spark-conf are for --engine spark")
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not '{mode}'")
    if clear and mode != "bolt":
        raise ConfigError("--clear is for --mode bolt; admin mode rebuilds with --overwrite")
    if full and mode != "sync":
        raise ConfigError("--full is for --mode sync")
    resume_run = None
    if resume is not None and resume != "newest":
        if not resume.isdigit():
            raise ConfigError(f"--resume takes a run id, not '{resume}'")
        resume_run = int(resume)
    options = RunOptions(
        mode=mode,
        workers=workers,
        overwrite=overwrite,
        tolerance=tolerance,
        batch_size=batch_size,
        clear=clear,
        retry_seconds=retry_seconds,
        resume=resume is not None,
        resume_run=resume_run,
        accept_schema_changes=accept_schema_changes,
        strict_values=strict_values,
        full=full,
        engine=engine,
        spark_master=spark_master,
        spark_conf=tuple(spark_conf or ()),
    )
    if as_json:
        summary = run(state(ctx).settings(), options)
        print(json.dumps(summary.as_dict(), indent=2))
        return
    summary = run(state(ctx).settings(), options, ConsoleReporter(console))
    console.print(summary_table(summary))
    for line in summary_footer(summary):
        console.print(escape(line), highlight=False, soft_wrap=True)
    for line in summary.values_changed:
        console.print(f"values changed: {escape(line)}", highlight=False, soft_wrap=True)


def _runs_table(title: str) -> Table:
    table = Table(title=title)
    for column in (
        "run",
        "mode",
        "status",
        "resumed",
        "started",
        "seconds",
        "nodes",
        "relationships",
        "ledger",
        "error",
    ):
        table.add_column(column)
    return table


runs_app = typer.Typer(help="Run history from the audit tables.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs_command(
    ctx: typer.Context, limit: Annotated[int, typer.Option(help="How many runs.")] = 20
) -> None:
    """List the latest runs."""
    if ctx.invoked_subcommand is not None:
        return
    table = _runs_table("runs")
    for run_row in list_runs(state(ctx).settings(), limit):
        table.add_row(*_run_cells(run_row))
    console.print(table)


@runs_app.command("show")
def runs_show_command(ctx: typer.Context, run_id: int) -> None:
    """Show one run with a row per table and relationship mapping."""
    run_row, tables = show_run(state(ctx).settings(), run_id)
    summary = _runs_table(f"run {run_id}")
    summary.add_row(*_run_cells(run_row))
    console.print(summary)
    if run_row.get("diffed_against"):
        console.print(f"compared with run {run_row['diffed_against']}, which built the graph")
    if run_row.get("accepted_schema_changes"):
        for text in run_row["accepted_schema_changes"]:
            console.print(f"accepted schema change: {escape(text)}", highlight=False)
    if run_row.get("traceback"):
        console.print("traceback of the unexpected error that stopped it:", highlight=False)
        console.print(escape(run_row["traceback"].rstrip()), highlight=False, soft_wrap=True)
    detail = Table(
        title=f"run {run_id}: the ledger per table, label and relationship mapping",
        caption="read + fan-out = written + rejected + duplicate + orphaned",
    )
    for column in (
        "kind",
        "source.table / type",
        "label",
        "status",
        "read",
        "written",
        "rejected",
        "duplicate",
        "orphaned",
        "fan-out",
        "ledger",
        *(("inserted", "updated", "deleted") if run_row["mode"] == "sync" else ()),
        "bytes",
        "seconds",
    ):
        detail.add_column(column, justify="right" if column in _NUMBERS else "left")
    changed: list[str] = []
    for row in tables:
        what = (
            row["table_name"] and f"{row['source_name']}.{row['table_name']}"
        ) or f"{row['relationship_type']} #{row['mapping_id']}"
        ledger = {True: "balanced", False: "UNBALANCED", None: ""}[row.get("ledger_balanced")]
        detail.add_row(
            row["object_kind"],
            what,
            row["label"] or "",
            row["status"],
            f"{row['rows_processed']:,}",
            f"{row['rows_written']:,}",
            f"{row['rows_rejected']:,}",
            f"{row.get('rows_duplicate') or 0:,}",
            f"{row['rows_orphaned']:,}",
            f"{row.get('rows_fanout') or 0:,}",
            ledger,
            *(
                [f"{row.get(f'rows_{k}') or 0:,}" for k in ("inserted", "updated", "deleted")]
                if run_row["mode"] == "sync"
                else []
            ),
            f"{row['bytes']:,}",
            f"{row['seconds']:.2f}",
        )
        for column, counts in (row["details"] or {}).get("values", {}).items():
            for kind, count in counts.items():
                changed.append(f"{count:,} values of {what}.{column}: {kind.replace('_', ' ')}")
    console.print(detail)
    for line in changed:
        console.print(f"values: {line}", highlight=False)


_NUMBERS = {
    *("read", "written", "rejected", "duplicate", "orphaned", "fan-out"),
    *("inserted", "updated", "deleted", "bytes", "seconds"),
}


def _run_cells(row: dict[str, Any]) -> list[str]:
    seconds = ""
    if row["finished_at"]:
        seconds = f"{(row['finished_at'] - row['started_at']).total_seconds():.1f}"
    ledger = {True: "balanced", False: "UNBALANCED", None: ""}[row.get("ledger_balanced")]
    return [
        str(row["run_id"]),
        row["mode"],
        row["status"],
        f"run {row['resumed_from']}" if row.get("resumed_from") else "",
        f"{row['started_at']:%Y-%m-%d %H:%M:%S}",
        seconds,
        f"{row['nodes_written'] or 0:,}",
        f"{row['relationships_written'] or 0:,}",
        ledger,
        (row["error_text"] or "")[:200],
    ]


@app.command("verify")
def verify_command(ctx: typer.Context) -> None:
    """Compare the graph's label and relationship counts with the newest run's manifest."""
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


def _weights(text: str) -> dict[str, float]:
    """``VIEWED=1,ADDED_TO_CART=3,PURCHASED=5`` → a weight per relationship type."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        try:
            weights[kind.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--weights: '{part}' is not TYPE=number") from None
    return weights


@app.command("recommend")
def recommend_command(
    ctx: typer.Context,
    strategy: Annotated[
        list[str] | None,
        typer.Option(help=f"Strategies to compute (repeatable): {', '.join(STRATEGIES)}."),
    ] = None,
    top: Annotated[int, typer.Option(help="Products per customer.")] = 10,
    weights: Annotated[
        str, typer.Option(help="Event weight per relationship type, TYPE=weight,...")
    ] = ",".join(f"{k}={v:g}" for k, v in DEFAULT_WEIGHTS.items()),
    purchase_type: Annotated[str, typer.Option(help="The purchase relationship type.")] = (
        "PURCHASED"
    ),
    customer_label: Annotated[str, typer.Option()] = "Customer",
    product_label: Annotated[str, typer.Option()] = "Product",
    key_property: Annotated[str, typer.Option(help="Property holding node keys.")] = "id",
    seed: Annotated[int, typer.Option(help="Seed of community detection and evaluation.")] = 42,
    eval_customers: Annotated[
        int, typer.Option(help="Customers whose last purchase is held out to measure hit rate.")
    ] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compute top-N recommendations for every customer and store them with their hit rates."""
    options = RecommendOptions(
        strategies=tuple(strategy or STRATEGIES),
        top_n=top,
        weights=_weights(weights),
        purchase_type=purchase_type,
        customer_label=customer_label,
        product_label=product_label,
        key_property=key_property,
        seed=seed,
        eval_customers=eval_customers,
    )
    options.check()
    settings = state(ctx).settings()
    with connect_graph(settings) as driver:
        result = recommend(settings, driver, options)
    if as_json:
        print(json.dumps(dataclasses.asdict(result)))
        return
    table = Table(
        title=f"recommendation run {result.rec_run_id} (graph of ETL run {result.etl_run_id})"
    )
    for column in ("strategy", "hit rate", "evaluated", "seconds"):
        table.add_column(column)
    for name, quality in result.quality.items():
        table.add_row(
            name,
            f"{quality['hit_rate']:.3f}",
            f"{quality['evaluated']:,.0f}",
            f"{quality['seconds']:.1f}",
        )
    table.caption = f"{result.rows:,} rows for {result.customers:,} customers" + (
        f"; {result.communities} communities stored on the customers" if result.communities else ""
    )
    console.print(table)


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
    insecure: Annotated[
        bool,
        typer.Option(help="Serve on a non-loopback address without BULK360_API_TOKEN."),
    ] = False,
) -> None:
    """Serve the HTTP API (health, run history, recommendations; docs at /docs)."""
    import uvicorn

    from bulk360.api import create_app

    settings = state(ctx).settings()
    if not settings.api_token and not _loopback(host) and not insecure:
        raise ConfigError(
            f"refusing to serve on {host} without a token: set BULK360_API_TOKEN (clients then "
            "send Authorization: Bearer <token>), or pass --insecure to serve it open"
        )
    bolt_uri(settings.neo4j_uri)  # a wrong scheme is one line now, not an error per request
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command("check")
def check_command(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(help="Base URL of the running bulk360 API (default: BULK360_API_URL)."),
    ] = None,
) -> None:
    """Verify the deployment end to end: services, last run, graph counts, API."""
    settings = state(ctx).settings()
    checks = run_checks(settings, api_url or settings.secret("BULK360_API_URL"))
    for check in checks:
        mark = {True: "[green]ok  [/]", False: "[bold red]FAIL[/]", None: "[dim]skip[/]"}[check.ok]
        console.print(f"{mark} {check.name:<18} {escape(check.detail)}", highlight=False)
    failed = [c.name for c in checks if c.ok is False]
    if failed:
        raise CheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}")
    console.print("deployment is healthy")
