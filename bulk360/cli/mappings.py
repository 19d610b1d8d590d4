"""``bulk360 mappings``: export, check, compare and apply the control rows as a YAML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from bulk360.cli.root import app, console, errors, state

if TYPE_CHECKING:
    from bulk360.mappings import Changes, MappingsFile

mappings_app = typer.Typer(
    help="The control rows as a YAML file: export, diff, apply.", no_args_is_help=True
)
app.add_typer(mappings_app, name="mappings")

MappingsPath = Annotated[Path, typer.Argument(help="The mappings file (YAML).")]


@mappings_app.command("export")
def export_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="Write here instead of to the standard output.")
    ] = None,
) -> None:
    """Write every configuration row of the control database as one YAML document."""
    from bulk360.mappings import current_rows, dump

    rows = current_rows(state(ctx).settings())
    text = dump(rows)
    for name in rows.clear_passwords:
        errors.print(
            f"warning: source '{name}' keeps its password in the control database; the file "
            "names no password (set db_password_env to move it to an environment variable)",
            highlight=False,
            soft_wrap=True,
        )
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        console.print(f"wrote {file}", highlight=False)


@mappings_app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of a mappings file (for editors and CI)."""
    from bulk360.mappings import schema

    typer.echo(json.dumps(schema(), indent=2))


def _compare(ctx: typer.Context, file: Path) -> tuple[MappingsFile, Changes]:
    from bulk360.errors import ValidationFailed
    from bulk360.mappings import check, compare, current_rows, effect, load
    from bulk360.plan import prepare_plan

    settings = state(ctx).settings()
    mappings = load(file)
    current = current_rows(settings)
    changes = compare(current, mappings)
    for change in changes:
        console.print(escape(str(change)), highlight=False, soft_wrap=True)
    after = check(settings, mappings, current)  # the file's rows as a run would see them
    try:
        before = prepare_plan(settings)
    except ValidationFailed:
        before = None
    shown = effect(before, after) if changes else []
    if shown:
        console.print("[bold]the plan then[/]")
        for line in shown:
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    return mappings, changes


@mappings_app.command("diff")
def diff_command(
    ctx: typer.Context,
    file: MappingsPath,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Compare with this file instead of the control database (no database needed: "
            "a pull request's base and head)."
        ),
    ] = None,
) -> None:
    """What applying FILE would change, row by row, and in the plan; exit 1 when it differs."""
    if against is not None:
        from bulk360.mappings import compare, load

        changes = compare(load(against).rows, load(file))
        for change in changes:
            console.print(escape(str(change)), highlight=False, soft_wrap=True)
        if changes:
            raise typer.Exit(1)
        console.print(f"{file.name} equals {against.name}")
        return
    _, changes = _compare(ctx, file)
    if not changes:
        console.print(f"{file.name} equals the control database")
        return
    raise typer.Exit(1)


@mappings_app.command("apply")
def apply_command(
    ctx: typer.Context,
    file: MappingsPath,
    dry_run: Annotated[
        bool, typer.Option(help="Check and show the changes; write nothing.")
    ] = False,
) -> None:
    """Check FILE whole (YAML, schema, the plan against the live catalogs), then write it in
    one transaction; each change is recorded in mapping_changes."""
    from bulk360.mappings import apply

    mappings, changes = _compare(ctx, file)
    if not changes:
        console.print(f"{file.name} equals the control database; nothing to write")
        return
    count = len(changes.changes)
    if dry_run:
        console.print(f"dry run: {count} change{'s' if count != 1 else ''}, nothing written")
        return
    apply(state(ctx).settings(), mappings, changes)
    console.print(f"applied {count} change{'s' if count != 1 else ''} from {file.name}")
