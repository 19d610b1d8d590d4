"""``bulk360 experiments``: define A/B experiments over the recommendation strategies and report
them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bulk360.cli.root import app, console, state
from bulk360.errors import ConfigError

if TYPE_CHECKING:
    from bulk360.apps.experiments import Arm, Interval

experiments_app = typer.Typer(
    help="A/B experiments: arms served by recommendation strategies, and their report.",
    no_args_is_help=True,
)
app.add_typer(experiments_app, name="experiments")


def _arm(text: str) -> Arm:
    """``NAME=STRATEGY[:SHARE]`` → an arm (share 1 when not given)."""
    from bulk360.apps.experiments import Arm

    name, _, rest = text.partition("=")
    strategy, _, share = rest.partition(":")
    try:
        return Arm(name.strip(), strategy.strip(), float(share) if share else 1.0)
    except ValueError:
        raise ConfigError(f"--arm '{text}': the share after ':' is not a number") from None


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} '{text}' is not an ISO date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@experiments_app.command("create")
def create_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    arm: Annotated[
        list[str],
        typer.Option(help="An arm, NAME=STRATEGY[:SHARE] (repeatable; shares are relative)."),
    ],
    starts: Annotated[
        str | None, typer.Option(help="When it starts (ISO; default now; UTC if no offset).")
    ] = None,
    ends: Annotated[str | None, typer.Option(help="When it ends (ISO).")] = None,
    days: Annotated[
        float | None, typer.Option(help="Ends this many days after it starts (instead of --ends).")
    ] = None,
) -> None:
    """Define an experiment: from its start, the API serves each customer their arm's list."""
    from bulk360.apps.experiments import create_experiment

    begin = _when(starts, "--starts") or datetime.now(UTC)
    end = _when(ends, "--ends")
    if days is not None:
        if end is not None:
            raise ConfigError("give --ends or --days, not both")
        end = begin + timedelta(days=days)
    made = create_experiment(state(ctx).settings(), name, [_arm(a) for a in arm], begin, end)
    total = sum(a.share for a in made.arms)
    split = ", ".join(f"{a.name} {a.strategy} {a.share / total:.0%}" for a in made.arms)
    console.print(f"experiment '{made.name}': {split}", highlight=False)


@experiments_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """The experiments, newest first."""
    from bulk360.apps.experiments import list_experiments

    table = Table()
    for column in ("name", "starts", "ends", "arms"):
        table.add_column(column)
    for made in list_experiments(state(ctx).settings()):
        table.add_row(
            made.name,
            f"{made.starts_at:%Y-%m-%d %H:%M}",
            f"{made.ends_at:%Y-%m-%d %H:%M}" if made.ends_at else "",
            ", ".join(f"{a.name}={a.strategy}:{a.share:g}" for a in made.arms),
        )
    console.print(table)


@experiments_app.command("end")
def end_command(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """End an experiment now: the API serves lists by strategy again."""
    from bulk360.apps.experiments import end_experiment

    end_experiment(state(ctx).settings(), name, datetime.now(UTC))
    console.print(f"experiment '{name}' ended")


def _interval(value: Interval, percent: bool) -> str:
    if value.value is None:
        return "-"

    def shown(number: float) -> str:
        return f"{number:.2%}" if percent else f"{number:,.2f}"

    if value.low is None or value.high is None:
        return shown(value.value)
    return f"{shown(value.value)} [{shown(value.low)}, {shown(value.high)}]"


@experiments_app.command("report")
def report_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Per arm: customers, CTR, conversion rate and average order value, with 95% intervals."""
    from bulk360.apps.experiments import report

    result = report(state(ctx).settings(), name)
    if as_json:
        print(json.dumps(dataclasses.asdict(result), default=str))
        return
    table = Table(title=f"experiment {result.name}")
    for column in (
        "arm",
        "strategy",
        "customers",
        "impressions",
        "clicks",
        "CTR [95%]",
        "buyers",
        "conversion [95%]",
        "purchases",
        "avg order value [95%]",
    ):
        table.add_column(column)
    for arm in result.arms:
        table.add_row(
            arm.arm,
            arm.strategy,
            f"{arm.customers:,}",
            f"{arm.impressions:,}",
            f"{arm.clicks:,}",
            _interval(arm.ctr, True),
            f"{arm.buyers:,}",
            _interval(arm.conversion_rate, True),
            f"{arm.purchases:,}",
            _interval(arm.average_order_value, False),
        )
    ends = f"{result.ends_at:%Y-%m-%d %H:%M}" if result.ends_at else "open"
    table.caption = (
        f"{result.starts_at:%Y-%m-%d %H:%M} to {ends} UTC; CTR: shown items clicked; conversion:"
        " customers who bought a recommended product"
    )
    console.print(table)
