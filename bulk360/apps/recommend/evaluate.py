"""The offline quality figure: the hit rate of each evaluated customer's last purchase, held out
of the data the strategy sees."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl

from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.recommend.rank import compute
from bulk360.apps.strategies import RecommendOptions

if TYPE_CHECKING:
    pass

__all__ = [
    "held_out",
    "hit_rate",
]


def held_out(data: GraphData, options: RecommendOptions) -> tuple[GraphData, pl.DataFrame]:
    """The data without each evaluated customer's last purchase, and those purchases."""
    purchases = data.interactions.filter(pl.col("type") == options.purchase_type)
    last = (
        purchases.sort(["customer", "at", "product"])
        .group_by("customer", maintain_order=True)
        .last()
        .select("customer", "product")
    )
    enough = purchases.group_by("customer").agg(n=pl.col("product").n_unique())
    candidates = sorted(
        last.join(enough.filter(pl.col("n") >= 2), on="customer").get_column("customer")
    )
    chosen = random.Random(options.seed).sample(
        candidates, min(options.eval_customers, len(candidates))
    )
    held = last.filter(pl.col("customer").is_in(chosen))
    training = replace(
        data,
        interactions=data.interactions.join(
            held.with_columns(pl.lit(options.purchase_type).alias("type")),
            on=["customer", "product", "type"],
            how="anti",
        ),
        order_lines=data.order_lines.join(held, on=["customer", "product"], how="anti"),
    )
    return training, held


def hit_rate(data: GraphData, options: RecommendOptions, strategy: str) -> tuple[float, int]:
    """The share of evaluated customers whose held-out last purchase is in their top N."""
    training, held = held_out(data, options)
    if held.is_empty():
        return 0.0, 0
    lists = compute(training, options, strategy, held.get_column("customer").to_list())
    hits = lists.join(held, on=["customer", "product"]).height
    return hits / held.height, held.height
