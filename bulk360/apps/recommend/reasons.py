"""Why a product is on a customer's list: one short reason per stored recommendation, from the
graph the strategies read, whatever strategy put it there.

In this order, the first that holds:

1. ``bought X; N customers who bought X bought this``: of the products the customer bought, the
   one whose buyers most often bought the recommended product too (N of them, N ≥ 2);
2. ``in your favourite category C``: the product is in one of the customer's three categories
   with the most event weight (the cold start's favourites);
3. ``a best seller``.

A new product's list row has its reason already (:mod:`bulk360.apps.recommend.content`).

Products and categories are named by their ``name`` property where the graph has one, else by
their key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from bulk360.apps.recommend.graph import GraphData
    from bulk360.apps.strategies import RecommendOptions

__all__ = ["explain"]


def _named(data: GraphData, kind: str, column: str) -> pl.DataFrame:
    """(``column``, ``column``_name) of one kind of node."""
    names = data.names.filter(pl.col("kind") == kind).select(
        pl.col("key").alias(column), pl.col("name").alias(f"{column}_name")
    )
    return names.unique(column, keep="first")


def explain(data: GraphData, options: RecommendOptions, lists: pl.DataFrame) -> pl.DataFrame:
    """``lists`` (customer, product, ..., reason) with every reason filled (one there already,
    a new product's, stays)."""
    pairs = lists.select("customer", "product").unique()
    purchased = data.purchased(options.purchase_type)
    # Buyers of each (bought, recommended) pair, only for the pairs some list holds.
    mine = pairs.join(purchased.rename({"product": "bought"}), on="customer")
    wanted = mine.select("bought", "product").unique()
    buyers = (
        purchased.rename({"product": "bought"})
        .join(wanted, on="bought")
        .join(purchased, on=["customer", "product"], how="semi")
        .group_by("bought", "product")
        .agg(n=pl.len())
        .filter(pl.col("n") >= 2)
    )
    because = (
        mine.join(buyers, on=["bought", "product"])
        .sort(["customer", "product", "n", "bought"], descending=[False, False, True, False])
        .unique(["customer", "product"], keep="first")
        .join(_named(data, "p", "bought"), on="bought", how="left")
        .select(
            "customer",
            "product",
            r1=pl.format(
                "bought {}; {} customers who bought it bought this",
                pl.coalesce("bought_name", "bought"),
                pl.col("n"),
            ),
        )
    )
    favourite = (
        data.interactions.join(data.categories, on="product")
        .group_by("customer", "category")
        .agg(w=pl.col("weight").sum())
        .sort(["customer", "w", "category"], descending=[False, True, False])
        .group_by("customer", maintain_order=True)
        .head(3)
    )
    in_favourite = (
        pairs.join(data.categories, on="product")
        .join(favourite, on=["customer", "category"])
        .sort(["customer", "product", "w", "category"], descending=[False, False, True, False])
        .unique(["customer", "product"], keep="first")
        .join(_named(data, "k", "category"), on="category", how="left")
        .select(
            "customer",
            "product",
            r2=pl.format("in your favourite category {}", pl.coalesce("category_name", "category")),
        )
    )
    return (
        lists.join(because, on=["customer", "product"], how="left")
        .join(in_favourite, on=["customer", "product"], how="left")
        .with_columns(reason=pl.coalesce("reason", "r1", "r2", pl.lit("a best seller")))
        .drop("r1", "r2")
    )
