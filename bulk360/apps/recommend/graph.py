"""The graph as ``bulk360 recommend`` reads it: the edge lists every strategy works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

__all__ = ["GraphData"]


@dataclass(frozen=True)
class GraphData:
    """The edge lists the strategies use; keys are text."""

    customers: pl.DataFrame  # customer, element_id
    interactions: pl.DataFrame  # customer, product, type, weight, at
    order_lines: pl.DataFrame  # customer, order, product, at (the order's time)
    categories: pl.DataFrame  # product, category
    names: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"kind": pl.String, "key": pl.String, "name": pl.String}
        )
    )
    """kind (``p`` product, ``k`` category), key, name: what reasons call them."""
    products: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"product": pl.String, "brand": pl.String, "price": pl.Float64}
        )
    )
    """Every product's attributes (the content cold start's)."""

    def purchased(self, purchase_type: str) -> pl.DataFrame:
        """Distinct (customer, product) pairs purchased, by event or by order line."""
        events = self.interactions.filter(pl.col("type") == purchase_type)
        return (
            pl.concat(
                [
                    events.select("customer", "product"),
                    self.order_lines.select("customer", "product"),
                ]
            )
            .unique()
            .sort("customer", "product")
        )
