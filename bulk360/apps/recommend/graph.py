"""The graph as ``bulk360 recommend`` reads it: the edge lists every strategy works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

__all__ = ["GraphData", "keyed_matrix"]


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


def keyed_matrix(
    frame: pl.DataFrame, row: str, rows: list[str], column: str, columns: list[str]
) -> Any:
    """The sparse matrix (CSR, float64) of ``frame``'s ``w`` with a row per key of ``rows`` (in
    the ``row`` column) and a column per key of ``columns``; a frame row with a key in neither
    list is dropped."""
    from scipy.sparse import csr_matrix

    rows_at = {key: i for i, key in enumerate(rows)}
    columns_at = {key: i for i, key in enumerate(columns)}
    known = frame.filter(pl.col(row).is_in(rows), pl.col(column).is_in(columns))
    return csr_matrix(
        (
            known.get_column("w").to_numpy().astype(np.float64),
            (
                [rows_at[key] for key in known.get_column(row)],
                [columns_at[key] for key in known.get_column(column)],
            ),
        ),
        shape=(len(rows), len(columns)),
    )
