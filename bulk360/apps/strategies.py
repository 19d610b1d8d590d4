"""The recommendation strategies and the options of a recommendation run (no heavy imports: the
command line shows them in its help)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulk360.errors import ConfigError

__all__ = [
    "DEFAULT_STRATEGIES",
    "DEFAULT_WEIGHTS",
    "MODEL_FIELDS",
    "STRATEGIES",
    "RecommendOptions",
    "read_model",
]

STRATEGIES = ("weighted", "copurchase", "pagerank", "community", "node2vec", "popular")
DEFAULT_STRATEGIES = ("weighted", "copurchase", "community", "popular")
"""The strategies a run computes unless told. node2vec and pagerank are not among them: on the
split by time, node2vec scored below the popularity cold start on the shop and on MovieLens, and
pagerank on MovieLens (README, "Recommendations measured")."""
DEFAULT_WEIGHTS = {"VIEWED": 1.0, "ADDED_TO_CART": 3.0, "PURCHASED": 5.0}


@dataclass(frozen=True)
class RecommendOptions:
    """What to compute, and the graph model it reads (the e-commerce sample's by default)."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    top_n: int = 10
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Relationship type (customer → product) → weight; the types read as events."""
    purchase_type: str = "PURCHASED"
    customer_label: str = "Customer"
    product_label: str = "Product"
    order_label: str = "Order"
    category_label: str = "Category"
    placed_type: str = "PLACED"
    contains_type: str = "CONTAINS"
    in_category_type: str = "IN_CATEGORY"
    order_time_property: str = "created_at"
    """The order's time (what a split by time reads for order lines)."""
    event_time_property: str = "occurred_at"
    """An event's time, on its relationship (what a split by time reads for events)."""
    name_property: str = "name"
    """The products' and categories' names, shown in the reasons of a list."""
    key_property: str = "id"
    """The property holding each node's key (customer and product keys in the lists)."""
    seed: int = 42
    eval_customers: int = 500
    """How many customers (drawn with ``seed``) the hit rate is measured on."""
    neighbours: int = 50
    """Similar products kept per product (weighted, copurchase)."""
    write_communities: bool = True
    dimensions: int = 32
    """node2vec: the length of each vector."""
    walk_length: int = 20
    walks_per_node: int = 5
    return_p: float = 1.0
    """node2vec's p: a walk goes back with weight 1/p."""
    inout_q: float = 0.5
    """node2vec's q: a walk moves away from where it was with weight 1/q (below 1: outward)."""
    customer_vector: str = "node"
    """node2vec: a customer's vector is their own node's (``node``) or the mean of their
    products' vectors weighted by their event weights (``products``)."""
    similar: int = 20
    """Similar products stored per product (node2vec)."""
    brand_property: str = "brand"
    price_property: str = "price"
    price_buckets: int = 5
    """The content cold start's price buckets: quantiles of the catalogue's prices."""
    new_per_list: int = 1
    """New products (no events, no orders) a list may end with, by their attributes."""

    def check(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigError(
                f"unknown strategy {', '.join(unknown) or '(none)'}; choose from {', '.join(STRATEGIES)}"
            )
        if self.top_n < 1:
            raise ConfigError(f"--top must be at least 1, not {self.top_n}")
        if self.purchase_type not in self.weights:
            raise ConfigError(f"the purchase type {self.purchase_type} needs a weight in --weights")
        if any(w <= 0 for w in self.weights.values()):
            raise ConfigError("event weights must be positive")
        if min(self.dimensions, self.walk_length - 1, self.walks_per_node) < 1:
            raise ConfigError(
                "node2vec needs dimensions and walks of at least 1 and walks of 2 steps"
            )
        if self.price_buckets < 1 or not 0 <= self.new_per_list <= self.top_n:
            raise ConfigError(
                "price buckets must be at least 1 and new products per list 0 to --top"
            )
        if self.customer_vector not in ("node", "products"):
            raise ConfigError(
                f"node2vec's customer vector is 'node' or 'products', not {self.customer_vector!r}"
            )
        if self.return_p <= 0 or self.inout_q <= 0:
            raise ConfigError("node2vec's p and q must be positive")


MODEL_FIELDS = (
    "weights",
    "purchase_type",
    "customer_label",
    "product_label",
    "order_label",
    "category_label",
    "placed_type",
    "contains_type",
    "in_category_type",
    "order_time_property",
    "event_time_property",
    "key_property",
    "name_property",
    "brand_property",
    "price_property",
)
"""The options that describe the graph rather than the run: what a model file may set."""


def read_model(path: Path) -> dict[str, Any]:
    """The graph model in a TOML file (``--model``): labels, types, properties and weights."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--model: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--model: {path} is not a readable TOML file ({exc})") from None
    unknown = sorted(set(values) - set(MODEL_FIELDS))
    if unknown:
        raise ConfigError(
            f"--model: {path} sets {', '.join(unknown)}, which is not part of a graph model; "
            f"it may set {', '.join(MODEL_FIELDS)}"
        )
    for name, value in values.items():
        if name == "weights":
            valid = isinstance(value, dict) and all(
                isinstance(w, int | float) and not isinstance(w, bool) for w in value.values()
            )
        else:
            valid = isinstance(value, str) and value != ""
        if not valid:
            wanted = "a table of TYPE = number" if name == "weights" else "a non-empty string"
            raise ConfigError(f"--model: {name} in {path} must be {wanted}")
    if "weights" in values:
        values["weights"] = {kind: float(w) for kind, w in values["weights"].items()}
    return values
