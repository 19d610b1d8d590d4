"""The graph read once over Bolt into the edge lists the strategies use."""

from __future__ import annotations

from typing import Any

import polars as pl
from neo4j import Driver

from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.strategies import RecommendOptions
from bulk360.errors import ConfigError
from bulk360.graph import quoted

__all__ = [
    "read_graph",
    "records",
]


def records(driver: Driver, database: str, cypher: str) -> list[dict[str, Any]]:
    records, _, _ = driver.execute_query(cypher, database_=database, bookmark_manager_=None)
    return [record.data() for record in records]


def read_graph(driver: Driver, database: str, options: RecommendOptions) -> GraphData:
    """The customer-product events, order lines and categories, read over Bolt."""
    o, key = options, quoted(options.key_property)
    customer, product = quoted(o.customer_label), quoted(o.product_label)
    customers = records(
        driver,
        database,
        f"MATCH (c:{customer}) WHERE c.{key} IS NOT NULL "
        f"RETURN toString(c.{key}) AS customer, elementId(c) AS element_id",
    )
    if not customers:
        raise ConfigError(
            f"the graph has no :{o.customer_label} nodes with a '{o.key_property}' property; "
            "build it first (bulk360 run) or set the labels"
        )
    types = "|".join(quoted(t) for t in o.weights)
    interactions = records(
        driver,
        database,
        f"MATCH (c:{customer})-[r:{types}]->(p:{product}) "
        f"RETURN toString(c.{key}) AS customer, toString(p.{key}) AS product, type(r) AS type, "
        f"toString(r.{quoted(o.event_time_property)}) AS at",
    )
    lines = records(
        driver,
        database,
        f"MATCH (c:{customer})-[:{quoted(o.placed_type)}]->(o:{quoted(o.order_label)})"
        f"-[:{quoted(o.contains_type)}]->(p:{product}) "
        f"RETURN DISTINCT toString(c.{key}) AS customer, elementId(o) AS order, "
        f"toString(p.{key}) AS product, toString(o.{quoted(o.order_time_property)}) AS at",
    )
    categories = records(
        driver,
        database,
        f"MATCH (p:{product})-[:{quoted(o.in_category_type)}]->(k:{quoted(o.category_label)}) "
        f"RETURN toString(p.{key}) AS product, coalesce(toString(k.{key}), elementId(k)) AS category",
    )
    name = quoted(o.name_property)
    names = records(
        driver,
        database,
        f"MATCH (p:{product}) WHERE p.{key} IS NOT NULL AND p.{name} IS NOT NULL "
        f"RETURN 'p' AS kind, toString(p.{key}) AS key, toString(p.{name}) AS name UNION ALL "
        f"MATCH (k:{quoted(o.category_label)}) WHERE k.name IS NOT NULL "
        f"RETURN 'k' AS kind, coalesce(toString(k.{key}), elementId(k)) AS key, "
        "toString(k.name) AS name",
    )
    attributes = records(
        driver,
        database,
        f"MATCH (p:{product}) WHERE p.{key} IS NOT NULL RETURN toString(p.{key}) AS product, "
        f"toString(p.{quoted(o.brand_property)}) AS brand, "
        f"toFloat(p.{quoted(o.price_property)}) AS price",
    )
    weights = pl.DataFrame({"type": list(o.weights), "weight": list(o.weights.values())})
    text = pl.String
    return GraphData(
        customers=pl.DataFrame(customers, schema={"customer": text, "element_id": text}).sort(
            "customer"
        ),
        interactions=pl.DataFrame(
            interactions, schema={"customer": text, "product": text, "type": text, "at": text}
        )
        .join(weights, on="type")
        .sort("customer", "product", "at", "type"),
        order_lines=pl.DataFrame(
            lines, schema={"customer": text, "order": text, "product": text, "at": text}
        ).sort("customer", "order", "product"),
        categories=pl.DataFrame(categories, schema={"product": text, "category": text}).sort(
            "product", "category"
        ),
        names=pl.DataFrame(names, schema={"kind": text, "key": text, "name": text}),
        products=pl.DataFrame(
            attributes, schema={"product": text, "brand": text, "price": pl.Float64}
        ).sort("product"),
    )
