"""The commands of ``bulk360``: each parses options, calls one library function, prints."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bulk360.cli import app, console, state
from bulk360.cli.reporting import ConsoleReporter, summary_table
from bulk360.control import init_schema
from bulk360.errors import ConfigError
from bulk360.pipeline import MODES, RunOptions, prepare_plan, run
from bulk360.samples import available_samples, load_sample

sample_app = typer.Typer(help="Sample datasets.", no_args_is_help=True)
app.add_typer(sample_app, name="sample")


@app.command("init")
def init_command(ctx: typer.Context) -> None:
    """Create or migrate the control schema in the control database (idempotent)."""
    applied = init_schema(state(ctx).settings())
    console.print(f"applied {', '.join(applied)}" if applied else "control schema is up to date")


@sample_app.command("load")
def sample_load_command(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="customer360")]
) -> None:
    """Create and fill a sample's source databases and write its control rows."""
    loaded = load_sample(state(ctx).settings(), name)
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
        console.print(
            f"  reader:   {table.copy_sql().as_string(None)}", highlight=False, soft_wrap=True
        )
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


@app.command("run")
def run_command(
    ctx: typer.Context,
    mode: Annotated[
        str, typer.Option(help="admin: CSV + neo4j-admin; csv: stop after the files.")
    ] = "admin",
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel COPY readers.")] = 4,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing Neo4j database (admin mode).")
    ] = False,
    tolerance: Annotated[int, typer.Option(min=0, help="Bad entries neo4j-admin may report.")] = 0,
) -> None:
    """Build the graph: read every mapped table, join the relationships, load Neo4j."""
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not '{mode}'")
    options = RunOptions(mode=mode, workers=workers, overwrite=overwrite, tolerance=tolerance)
    summary = run(state(ctx).settings(), options, ConsoleReporter(console))
    console.print(summary_table(summary))


def _runs_table(title: str) -> Table:
    table = Table(title=title)
    for column in (
        "run",
        "mode",
        "status",
        "started",
        "seconds",
        "nodes",
        "relationships",
        "error",
    ):
        table.add_column(column)
    return table
