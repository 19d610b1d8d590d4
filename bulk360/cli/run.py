"""``bulk360 init``, ``plan`` and ``run``: the control schema, what a run would do, and a run.

Each command parses its options, calls one library function and prints; the library is imported
when the command runs, so that ``bulk360 --help`` answers at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bulk360.cli.root import app, console, state
from bulk360.options import RunOptions


@app.command("init")
def init_command(ctx: typer.Context) -> None:
    """Create or migrate the control schema in the control database (idempotent)."""
    from bulk360.control import init_schema

    applied = init_schema(state(ctx).settings())
    console.print(f"applied {', '.join(applied)}" if applied else "control schema is up to date")


GraphFile = Annotated[
    Path | None,
    typer.Option(
        "--graph",
        metavar="FILE",
        help="Also draw the graph model into FILE: .svg or .png (Graphviz) or .mmd (Mermaid); "
        "labels with their table and key, types with their join condition, counts of the "
        "newest run, excluded columns struck through.",
    ),
]


@app.command("plan")
def plan_command(ctx: typer.Context, graph: GraphFile = None) -> None:
    """Print what a run would read and build, without writing anything."""
    from bulk360.errors import SchemaDrift
    from bulk360.plan import prepare_plan
    from bulk360.plan.ids import IdRange

    if graph is not None:
        from bulk360.plan.picture import check_path

        check_path(graph)
    settings = state(ctx).settings()
    plan = prepare_plan(settings)
    for table in plan.tables:
        target = (
            f"{table.labels_text} key ({', '.join(table.key_columns)})"
            if table.label
            else "relationships only"
        )
        console.print(
            f"[bold]{table.source}.{table.schema}.{table.table}[/] -> {target}", highlight=False
        )
        console.print(f"  kept:     {', '.join(c.header for c in table.columns)}", highlight=False)
        if table.excluded:
            console.print(f"  excluded: {', '.join(table.excluded)}", highlight=False)
        # A run numbers node ids from the label's range (see bulk360.plan.ids); shown from 0.
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
    if graph is not None:
        from bulk360.control.history import graph_counts
        from bulk360.plan.picture import Counts, draw

        draw(plan, Counts(*graph_counts(settings)), graph)
        console.print(f"graph model drawn in {graph}", highlight=False)
    if plan.blocking_changes:
        raise SchemaDrift([change.text for change in plan.blocking_changes])


# The options of ``bulk360 run``: what each one means is RunOptions' to say (and check).
Mode = Annotated[
    str,
    typer.Option(
        help="admin: CSV + neo4j-admin (server stopped); bolt: write over Bolt into a running "
        "server (Aura); sync: write over Bolt only what changed since the run that built the "
        "graph; csv: stop after the files."
    ),
]
Workers = Annotated[
    int, typer.Option(min=1, max=64, help="Parallel COPY readers (and Bolt writers).")
]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing Neo4j database (admin mode).")]
Tolerance = Annotated[int, typer.Option(min=0, help="Bad entries neo4j-admin may report.")]
BatchSize = Annotated[int, typer.Option(min=1, help="Rows per UNWIND transaction (Bolt).")]
Clear = Annotated[bool, typer.Option(help="Delete every node and relationship first (bolt mode).")]
RetrySeconds = Annotated[
    float, typer.Option(min=0, help="How long a failing transaction is retried (Bolt).")
]
Resume = Annotated[
    str | None,
    typer.Option(
        metavar="[RUN_ID]",
        help="Resume a failed run (default: the newest): its own mode and options; only the "
        "load and the records are repeated when its import folder was published.",
    ),
]
AcceptSchemaChanges = Annotated[
    bool, typer.Option(help="Let the run through although mapped tables changed (recorded).")
]
StrictValues = Annotated[
    bool, typer.Option(help="Fail instead of changing values Neo4j cannot hold as they are.")
]
Full = Annotated[
    bool, typer.Option(help="Sync mode: clear the graph and write everything (no comparison).")
]
EngineName = Annotated[
    str,
    typer.Option(
        help="local: COPY readers and Polars joins in this process; spark: JDBC reads and "
        "Spark joins on a Spark cluster (pip install 'bulk360[spark]')."
    ),
]
SparkMaster = Annotated[
    str, typer.Option(help="Spark master URL (--engine spark), e.g. spark://host:7077.")
]
SparkConf = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE", help="A Spark setting (--engine spark); may be repeated."),
]
PackageFormatName = Annotated[
    str,
    typer.Option(
        help="admin and csv modes: the import package's files, csv (as PostgreSQL writes them) "
        "or parquet (typed columns; neo4j-admin --input-type=parquet)."
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the summary as JSON (no steps, no table).")
]


@app.command("run")
def run_command(
    ctx: typer.Context,
    mode: Mode = "admin",
    workers: Workers = RunOptions.workers,
    overwrite: Overwrite = False,
    tolerance: Tolerance = 0,
    batch_size: BatchSize = RunOptions.batch_size,
    clear: Clear = False,
    retry_seconds: RetrySeconds = RunOptions.retry_seconds,
    resume: Resume = None,
    accept_schema_changes: AcceptSchemaChanges = False,
    strict_values: StrictValues = False,
    full: Full = False,
    engine: EngineName = "local",
    spark_master: SparkMaster = RunOptions.spark_master,
    spark_conf: SparkConf = None,
    package_format: PackageFormatName = "csv",
    as_json: AsJson = False,
) -> None:
    """Build the graph: read every mapped table, join the relationships, load Neo4j."""
    from bulk360.cli.reporting import ConsoleReporter, summary_footer, summary_table
    from bulk360.errors import ConfigError
    from bulk360.pipeline import run

    resume_run = None
    if resume is not None and resume != "newest":
        if not resume.isdigit():
            raise ConfigError(f"--resume takes a run id, not '{resume}'")
        resume_run = int(resume)
    options = RunOptions(
        mode=mode,  # type: ignore[arg-type]  # RunOptions names what it does not take
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
        engine=engine,  # type: ignore[arg-type]
        spark_master=spark_master,
        spark_conf=tuple(spark_conf or ()),
        package_format=package_format,  # type: ignore[arg-type]
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
