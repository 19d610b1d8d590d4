"""A strategy's scores into each customer's top N, filled from the cold start, with reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from bulk360.apps.recommend.content import NEW, new_products
from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.recommend.scoring import STRATEGY_FUNCTIONS, node2vec, popular
from bulk360.apps.strategies import RecommendOptions

if TYPE_CHECKING:
    from bulk360.apps.recommend.embeddings import Embeddings

__all__ = [
    "compute",
    "rank",
]


def rank(
    strategy: str,
    model: pl.DataFrame,
    cold: pl.DataFrame,
    purchased: pl.DataFrame,
    top_n: int,
    new: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Top ``top_n`` per customer: the model's candidates first, then the cold start's; a
    customer's ``new`` products (:mod:`bulk360.apps.recommend.content`) take the last places."""
    order = (["customer", "tier", "score", "product"], [False, False, True, False])
    tiers = pl.concat(
        [
            model.select("customer", "product", "score", tier=pl.lit(0)),
            cold.select("customer", "product", "score", tier=pl.lit(1)),
        ]
    )
    fresh = (new if new is not None else pl.DataFrame(schema=NEW)).select(
        "customer", "product", "score", "reason", tier=pl.lit(2)
    )
    slots = fresh.group_by("customer").agg(taken=pl.len())
    ranked = (
        tiers.join(purchased, on=["customer", "product"], how="anti")
        .sort(order[0], descending=order[1])
        .unique(["customer", "product"], keep="first", maintain_order=True)
        .join(slots, on="customer", how="left")
        .filter(pl.int_range(pl.len()).over("customer") < top_n - pl.col("taken").fill_null(0))
        .select("customer", "product", "score", reason=pl.lit(None, pl.String), tier="tier")
    )
    return (
        pl.concat([ranked, fresh])
        .sort(order[0], descending=order[1], maintain_order=True)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("customer"))
        .select(
            pl.lit(strategy).alias("strategy"),
            "customer",
            "rank",
            "product",
            "score",
            cold_start=(pl.col("tier") >= 1) | (strategy == "popular"),
            reason="reason",
        )
    )


def cannot_compute(strategy: str, data: GraphData) -> str | None:
    """Why ``strategy`` cannot run on ``data`` (None: it can)."""
    if strategy == "copurchase" and data.order_lines.is_empty():
        return "copurchase needs orders (customer → order → product) and the graph has none"
    return None


def compute(
    data: GraphData,
    options: RecommendOptions,
    strategy: str,
    targets: list[str],
    embeddings: Embeddings | None = None,
) -> pl.DataFrame:
    """Ranked lists (strategy, customer, rank, product, score, cold_start, reason) for
    ``targets`` (``embeddings``: the node2vec vectors of ``data``, when already trained). A
    reason is there only for new products (:mod:`bulk360.apps.recommend.reasons` gives the others)."""
    purchased = data.purchased(options.purchase_type)
    cold = popular(data, options, targets)
    new = new_products(data, options, targets)
    if strategy == "popular":
        model = cold
    elif strategy == "node2vec":
        model = node2vec(data, options, targets, embeddings)
    else:
        model = STRATEGY_FUNCTIONS[strategy](data, options, targets)
    return rank(strategy, model, cold, purchased, options.top_n, new)
