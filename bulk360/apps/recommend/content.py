"""The content-based cold start of new products: a product nobody has bought, viewed or ordered
yet reaches the lists of the customers whose tastes its attributes match.

A customer's tastes come from their event weights: their three favourite categories, their
three favourite brands, and their price bucket (the bucket of the catalogue's price quantiles
where they spent the most event weight). A new product matches by category, brand and bucket;
one that matches at least two of them, category or brand among them, is a candidate, scored by
its matches. Each list gets at most ``new_per_list`` of them, in its last places (see
:func:`bulk360.apps.recommend.compute`), flagged as cold start, with the reason ``new from brand
Y you buy`` or ``new in your favourite category C``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from bulk360.apps.recommend.graph import GraphData
    from bulk360.apps.strategies import RecommendOptions

__all__ = ["NEW", "new_products"]

NEW = {"customer": pl.String, "product": pl.String, "score": pl.Float64, "reason": pl.String}


def _favourites(events: pl.DataFrame, column: str, n: int) -> pl.DataFrame:
    """(customer, ``column``): each customer's ``n`` values with the most event weight."""
    return (
        events.drop_nulls(column)
        .group_by("customer", column)
        .agg(w=pl.col("weight").sum())
        .sort(["customer", "w", column], descending=[False, True, False])
        .group_by("customer", maintain_order=True)
        .head(n)
        .select("customer", column)
    )


def new_products(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """(customer, product, score, reason): new products for each target, best first."""
    engaged = pl.concat(
        [data.interactions.select("product"), data.order_lines.select("product")]
    ).unique()
    catalogue = data.products.join(
        data.categories.unique("product", keep="first"), on="product", how="left"
    )
    if options.new_per_list == 0 or catalogue.join(engaged, on="product", how="anti").is_empty():
        return pl.DataFrame(schema=NEW)
    priced = catalogue.drop_nulls("price")
    edges = (
        priced.select(
            [
                pl.col("price").quantile(i / options.price_buckets).alias(f"q{i}")
                for i in range(1, options.price_buckets)
            ]
        ).row(0)
        if priced.height
        else ()
    )
    bucket = pl.lit(0)
    for edge in edges:
        bucket = bucket + (pl.col("price") > edge).cast(pl.Int32)
    catalogue = catalogue.with_columns(bucket=pl.when(pl.col("price").is_not_null()).then(bucket))
    events = data.interactions.filter(pl.col("customer").is_in(targets)).join(
        catalogue, on="product"
    )
    categories = _favourites(events, "category", 3).with_columns(c=pl.lit(1))
    brands = _favourites(events, "brand", 3).with_columns(b=pl.lit(1))
    buckets = _favourites(events, "bucket", 1).with_columns(p=pl.lit(1))
    fresh = catalogue.join(engaged, on="product", how="anti")
    candidates = pl.concat(
        [
            categories.join(fresh, on="category").select("customer", "product"),
            brands.join(fresh, on="brand").select("customer", "product"),
        ]
    ).unique()
    names = (
        data.names.filter(pl.col("kind") == "k")
        .select(category="key", category_name="name")
        .unique("category", keep="first")
    )
    scored = (
        candidates.join(fresh, on="product")
        .join(categories, on=["customer", "category"], how="left")
        .join(brands, on=["customer", "brand"], how="left")
        .join(buckets, on=["customer", "bucket"], how="left")
        .join(names, on="category", how="left")
        .with_columns(pl.col("c", "b", "p").fill_null(0))
        .with_columns(score=(pl.col("c") + pl.col("b") + pl.col("p")).cast(pl.Float64))
        .filter(pl.col("score") >= 2)
        .with_columns(
            reason=pl.when(pl.col("b") == 1)
            .then(pl.format("new from brand {} you buy", pl.col("brand")))
            .otherwise(
                pl.format(
                    "new in your favourite category {}",
                    pl.coalesce("category_name", "category"),
                )
            )
        )
    )
    return (
        scored.sort(["customer", "score", "product"], descending=[False, True, False])
        .group_by("customer", maintain_order=True)
        .head(options.new_per_list)
        .select(list(NEW))
    )
