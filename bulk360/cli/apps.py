"""``bulk360 sample`` and ``recommend``: the sample datasets and the shop's recommendations."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bulk360.apps.strategies import DEFAULT_STRATEGIES, DEFAULT_WEIGHTS, STRATEGIES
from bulk360.cli.root import app, console, state

sample_app = typer.Typer(help="Sample datasets.", no_args_is_help=True)
app.add_typer(sample_app, name="sample")
recommend_app = typer.Typer(
    help="Compute top-N recommendations for every customer and store them with their hit "
    "rates; `recommend evaluate` measures the strategies against peer baselines.",
    invoke_without_command=True,
)
app.add_typer(recommend_app, name="recommend")


@sample_app.command("load")
def sample_load_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="customer360, ecommerce or movielens")],
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
    from bulk360.apps.samples import load_sample

    loaded = load_sample(state(ctx).settings(), name, scale, database_prefix)
    for database, tables in loaded.databases.items():
        rows = ", ".join(f"{t} {n:,}" for t, n in tables.items())
        console.print(f"{database}: {rows}", highlight=False)
    console.print(f"control rows of sample '{name}' written")


@sample_app.command("list")
def sample_list_command() -> None:
    """List the samples that can be loaded."""
    from bulk360.apps.samples import available_samples

    for name in available_samples():
        console.print(name)


def _weights(text: str) -> dict[str, float]:
    """``VIEWED=1,ADDED_TO_CART=3,PURCHASED=5`` → a weight per relationship type."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        try:
            weights[kind.strip()] = float(value)
        except ValueError:
            from bulk360.errors import ConfigError

            raise ConfigError(f"--weights: '{part}' is not TYPE=number") from None
    return weights


# The graph model's options, the same for `recommend` and `recommend evaluate`: each one given
# overrides the --model file, which overrides the defaults (the e-commerce sample's model).
Model = Annotated[
    Path | None,
    typer.Option(
        help="A TOML file with the graph model (labels, types, properties, weights), e.g. "
        "sql/samples/movielens/recommend.toml; the options below override it.",
        dir_okay=False,
    ),
]
WEIGHTS = ",".join(f"{k}={v:g}" for k, v in DEFAULT_WEIGHTS.items())
Weights = Annotated[
    str | None,
    typer.Option(help=f"Event weight per relationship type, TYPE=weight,... [default: {WEIGHTS}]"),
]


PurchaseType = Annotated[
    str | None, typer.Option(help="The purchase relationship type. [default: PURCHASED]")
]
CustomerLabel = Annotated[str | None, typer.Option(help="[default: Customer]")]
ProductLabel = Annotated[str | None, typer.Option(help="[default: Product]")]
CategoryLabel = Annotated[str | None, typer.Option(help="[default: Category]")]
InCategoryType = Annotated[str | None, typer.Option(help="[default: IN_CATEGORY]")]
KeyProperty = Annotated[str | None, typer.Option(help="Property holding node keys. [default: id]")]


def _graph_model(model: Path | None, **given: str | None) -> dict[str, Any]:
    from bulk360.apps.strategies import read_model

    values = read_model(model) if model else {}
    values.update({name: value for name, value in given.items() if value is not None})
    if given.get("weights") is not None:
        values["weights"] = _weights(str(given["weights"]))
    return values


@recommend_app.callback()
def recommend_command(
    ctx: typer.Context,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Strategies to compute (repeatable): {', '.join(STRATEGIES)}; "
            f"by default {', '.join(DEFAULT_STRATEGIES)}."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Products per customer.")] = 10,
    model: Model = None,
    weights: Weights = None,
    purchase_type: PurchaseType = None,
    customer_label: CustomerLabel = None,
    product_label: ProductLabel = None,
    category_label: CategoryLabel = None,
    in_category_type: InCategoryType = None,
    key_property: KeyProperty = None,
    seed: Annotated[int, typer.Option(help="Seed of community detection and evaluation.")] = 42,
    eval_customers: Annotated[
        int, typer.Option(help="Customers whose last purchase is held out to measure hit rate.")
    ] = 500,
    export_embeddings: Annotated[
        Path | None,
        typer.Option(
            help="Write each node's node2vec vector with its label and key to this Parquet file.",
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compute top-N recommendations for every customer and store them with their hit rates."""
    if ctx.invoked_subcommand is not None:
        return
    from bulk360.apps.recommend import recommend
    from bulk360.apps.strategies import RecommendOptions
    from bulk360.graph import connect_graph

    options = RecommendOptions(
        strategies=tuple(strategy or DEFAULT_STRATEGIES),
        top_n=top,
        seed=seed,
        eval_customers=eval_customers,
        **_graph_model(
            model,
            weights=weights,
            purchase_type=purchase_type,
            customer_label=customer_label,
            product_label=product_label,
            category_label=category_label,
            in_category_type=in_category_type,
            key_property=key_property,
        ),
    )
    options.check()
    settings = state(ctx).settings()
    with connect_graph(settings) as driver:
        result = recommend(settings, driver, options, export_embeddings, explicit=bool(strategy))
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
    table.caption = (
        f"{result.rows:,} rows for {result.customers:,} customers"
        + (
            f"; {result.communities} communities stored on the customers"
            if result.communities
            else ""
        )
        + (f"; {result.similar:,} similar products stored" if result.similar else "")
        + (f"; {result.embeddings:,} vectors in {export_embeddings}" if result.embeddings else "")
        + "".join(f"; {name} skipped: {why}" for name, why in result.skipped.items())
    )
    console.print(table)


@recommend_app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            help="Strategies and baselines to measure (repeatable); by default every strategy "
            "and baseline that can run on the graph."
        ),
    ] = None,
    cut: Annotated[
        datetime | None,
        typer.Option(help="Train before this time, evaluate the purchases after it (ISO)."),
    ] = None,
    holdout_days: Annotated[
        float | None,
        typer.Option(help="The cut this many days before the last purchase (instead of --cut)."),
    ] = None,
    model: Model = None,
    weights: Weights = None,
    purchase_type: PurchaseType = None,
    customer_label: CustomerLabel = None,
    product_label: ProductLabel = None,
    category_label: CategoryLabel = None,
    in_category_type: InCategoryType = None,
    key_property: KeyProperty = None,
    seed: Annotated[int, typer.Option(help="Seed of the models and the bootstrap.")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure strategies and baselines on a split by time: NDCG@10, recall@10, MAP@12, hit
    rate@10 and coverage, each with a 95% bootstrap interval. Nothing is stored."""
    from bulk360.apps.recommend.offline import BASELINES, evaluate
    from bulk360.apps.recommend.read import read_graph
    from bulk360.apps.strategies import RecommendOptions
    from bulk360.errors import ConfigError
    from bulk360.graph import connect_graph

    if cut is not None and holdout_days is not None:
        raise ConfigError("give --cut or --holdout-days, not both")
    options = RecommendOptions(
        seed=seed,
        **_graph_model(
            model,
            weights=weights,
            purchase_type=purchase_type,
            customer_label=customer_label,
            product_label=product_label,
            category_label=category_label,
            in_category_type=in_category_type,
            key_property=key_property,
        ),
    )
    options.check()
    settings = state(ctx).settings()
    with connect_graph(settings) as driver:
        data = read_graph(driver, settings.neo4j_database, options)
    methods = list(strategy or (*STRATEGIES, *BASELINES))
    result = evaluate(data, options, methods, cut, holdout_days, explicit=bool(strategy))
    if as_json:
        print(json.dumps(result))
        return
    table = Table(
        title=f"cut {result['cut']} (validation cut {result['validation_cut']}): "
        f"{result['customers']:,} customers evaluated ({result['new_customers']:,} new after "
        f"the cut), {result['left_out']:,} with no purchase after the cut left out"
    )
    table.add_column("method")
    for metric in ("ndcg@10", "recall@10", "map@12", "hit_rate@10", "coverage@10"):
        table.add_column(metric)
    table.add_column("ndcg@10 returning")
    for name, row in sorted(
        result["methods"].items(), key=lambda kv: -kv[1]["metrics"]["ndcg@10"]["value"]
    ):
        table.add_row(
            f"{name} ({row['kind']})",
            *(_figure(f) for f in row["metrics"].values()),
            _figure(row["returning_metrics"]["ndcg@10"]) if row["returning_metrics"] else "-",
        )
    table.caption = "; ".join(f"{m} skipped: {why}" for m, why in result["skipped"].items())
    console.print(table)


def _figure(figure: dict[str, float]) -> str:
    return f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"
