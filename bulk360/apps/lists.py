"""The lists the API and the dashboard serve: those ``bulk360 recommend`` stored (without what
the customer bought since), and the graph's live answers when none is stored (parameterized
Cypher; labels and types from the recommendation options)."""

from __future__ import annotations

from typing import Any

import psycopg
from neo4j import Driver
from psycopg.rows import dict_row

from bulk360.apps.strategies import RecommendOptions
from bulk360.graph import quoted

__all__ = [
    "bought_since",
    "copurchased",
    "live_recommendations",
    "stored_recommendations",
    "stored_similar",
    "why",
    "without",
]


def stored_recommendations(
    conn: psycopg.Connection[Any], customer: str, strategy: str, limit: int | None = None
) -> dict[str, Any] | None:
    """The customer's list from the newest succeeded recommendation run that holds one."""
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT r.rec_run_id, r.rank, r.product_key, r.score, r.cold_start, r.reason"
            " FROM recommendations AS r"
            " WHERE r.customer_key = %(customer)s AND r.strategy = %(strategy)s"
            "   AND r.rec_run_id = (SELECT max(x.rec_run_id) FROM recommendations AS x"
            "     JOIN recommendation_runs AS run USING (rec_run_id)"
            "     WHERE run.status = 'succeeded' AND x.customer_key = %(customer)s"
            "       AND x.strategy = %(strategy)s)"
            " ORDER BY r.rank LIMIT %(limit)s",
            {"customer": customer, "strategy": strategy, "limit": limit},
        )
        .fetchall()
    )
    if not rows:
        return None
    return {
        "source": "stored",
        "rec_run_id": rows[0]["rec_run_id"],
        "items": [
            {
                "rank": row["rank"],
                "product": row["product_key"],
                "score": row["score"],
                "cold_start": row["cold_start"],
                "reason": row["reason"],
            }
            for row in rows
        ],
    }


def bought_since(
    driver: Driver,
    database: str,
    customer: str,
    products: list[str],
    options: RecommendOptions,
) -> set[str]:
    """Of a stored list's ``products``, those the customer has bought (since the list was
    computed: a list never holds a product bought before)."""
    key = quoted(options.key_property)
    # A key is text in the lists and may be a number in the graph: both are looked up (a key
    # constraint's index serves either).
    records, _, _ = driver.execute_query(
        f"MATCH (c:{quoted(options.customer_label)}) "
        f"WHERE c.{key} IN [$customer, toInteger($customer)] "
        f"MATCH (c)-[:{quoted(options.purchase_type)}]->(p:{quoted(options.product_label)}) "
        f"WHERE toString(p.{key}) IN $products "
        f"RETURN DISTINCT toString(p.{key}) AS product",
        customer=customer,
        products=products,
        database_=database,
        bookmark_manager_=None,
    )
    return {record["product"] for record in records}


def without(found: dict[str, Any], gone: set[str]) -> dict[str, Any]:
    """``found`` without the products ``gone``, ranked again from 1."""
    if not gone:
        return found
    kept = [item for item in found["items"] if item["product"] not in gone]
    return {**found, "items": [{**item, "rank": i} for i, item in enumerate(kept, start=1)]}


def live_recommendations(
    driver: Driver, database: str, customer: str, limit: int, options: RecommendOptions
) -> dict[str, Any] | None:
    """Products bought by customers who engaged with the same products, else popular ones.

    None when the graph has no such customer. Labels and types come from ``options``; the
    customer and the limit are query parameters.
    """
    key = quoted(options.key_property)
    customer_label, product = quoted(options.customer_label), quoted(options.product_label)
    events = "|".join(quoted(t) for t in options.weights)
    purchased = quoted(options.purchase_type)
    find = f"MATCH (c:{customer_label}) WHERE toString(c.{key}) = $customer "
    bought = (
        f"OPTIONAL MATCH (c)-[:{purchased}]->(b:{product}) WITH c, collect(DISTINCT b) AS bought "
    )

    def query(cypher: str) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(
            cypher, customer=customer, limit=limit, database_=database, bookmark_manager_=None
        )
        return [r.data() for r in records]

    if not query(find + "RETURN c LIMIT 1"):
        return None
    neighbours = query(
        find + bought + f"MATCH (c)-[:{events}]->(:{product})<-[:{events}]-(other:{customer_label})"
        f"-[:{purchased}]->(p:{product}) WHERE other <> c AND NOT p IN bought "
        f"WITH p, count(*) AS score ORDER BY score DESC, toString(p.{key}) LIMIT $limit "
        f"RETURN toString(p.{key}) AS product, toFloat(score) AS score"
    )
    cold = not neighbours
    rows = neighbours or query(
        find
        + bought
        + f"MATCH (:{customer_label})-[r:{purchased}]->(p:{product}) WHERE NOT p IN bought "
        f"WITH p, count(r) AS score ORDER BY score DESC, toString(p.{key}) LIMIT $limit "
        f"RETURN toString(p.{key}) AS product, toFloat(score) AS score"
    )
    return {
        "source": "live",
        "rec_run_id": None,
        "items": [
            {
                "rank": i,
                "product": row["product"],
                "score": row["score"],
                "cold_start": cold,
                "reason": "a best seller"
                if cold
                else "bought by customers who engaged with the products you did",
            }
            for i, row in enumerate(rows, start=1)
        ],
    }


def stored_similar(
    conn: psycopg.Connection[Any], product: str, limit: int
) -> dict[str, Any] | None:
    """The product's nearest products from the newest succeeded run that stored them."""
    rows = conn.execute(
        "SELECT s.rec_run_id, s.rank, s.similar_key, s.score FROM product_similarities AS s"
        " WHERE s.product_key = %(product)s"
        "   AND s.rec_run_id = (SELECT max(x.rec_run_id) FROM product_similarities AS x"
        "     JOIN recommendation_runs AS run USING (rec_run_id)"
        "     WHERE run.status = 'succeeded' AND x.product_key = %(product)s)"
        " ORDER BY s.rank LIMIT %(limit)s",
        {"product": product, "limit": limit},
    ).fetchall()
    if not rows:
        return None
    return {
        "source": "embedding",
        "rec_run_id": rows[0][0],
        "items": [{"rank": r[1], "product": r[2], "score": r[3]} for r in rows],
    }


def copurchased(
    driver: Driver, database: str, product: str, limit: int, options: RecommendOptions
) -> dict[str, Any] | None:
    """The products most often in the same orders as ``product``; None when the graph has no
    such product."""
    key, label = quoted(options.key_property), quoted(options.product_label)
    contains = quoted(options.contains_type)
    records, _, _ = driver.execute_query(
        f"MATCH (p:{label}) WHERE toString(p.{key}) = $product "
        f"OPTIONAL MATCH (p)<-[:{contains}]-(o)-[:{contains}]->(other:{label}) WHERE other <> p "
        f"WITH other, count(DISTINCT o) AS shared ORDER BY shared DESC, toString(other.{key}) "
        f"LIMIT $limit RETURN toString(other.{key}) AS product, toFloat(shared) AS score",
        product=product,
        limit=limit,
        database_=database,
        bookmark_manager_=None,
    )
    if not records:
        return None
    found = [r.data() for r in records if r["product"] is not None]
    return {
        "source": "copurchase",
        "rec_run_id": None,
        "items": [{"rank": i, **row} for i, row in enumerate(found, start=1)],
    }


def why(
    driver: Driver, database: str, customer: str, product: str, options: RecommendOptions
) -> dict[str, Any] | None:
    """The shortest path between the customer and the product over purchases, orders and
    categories (either direction, at most 8 steps); None when either is unknown or no path
    joins them."""
    key = quoted(options.key_property)
    types = "|".join(
        quoted(t)
        for t in (
            options.purchase_type,
            options.placed_type,
            options.contains_type,
            options.in_category_type,
        )
    )
    records, _, _ = driver.execute_query(
        f"MATCH (c:{quoted(options.customer_label)}) WHERE toString(c.{key}) = $customer "
        f"MATCH (p:{quoted(options.product_label)}) WHERE toString(p.{key}) = $product "
        f"MATCH path = shortestPath((c)-[:{types}*..8]-(p)) "
        f"RETURN [n IN nodes(path) | {{label: head(labels(n)), key: toString(n.{key}), "
        "name: toString(n.name)}] AS nodes, [r IN relationships(path) | type(r)] AS relationships "
        "LIMIT 1",
        customer=customer,
        product=product,
        database_=database,
        bookmark_manager_=None,
    )
    if not records:
        return None
    return {"customer": customer, "product": product, **records[0].data()}
