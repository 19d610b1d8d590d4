"""The e-commerce sample end to end: its graph, recommendations, the HTTP API and `bulk360 check`.

Real PostgreSQL, the real neo4j-admin and Neo4j, and a real uvicorn server on a free local port.
This module rebuilds the Neo4j database with the shop graph and, last, clears it: it runs after
the Customer 360 modules (pytest's file order) and nothing after it needs a graph.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import psycopg
import pytest
import redis
from neo4j import Driver
from psycopg.rows import dict_row
from scipy.stats import t as student_t
from selenium.webdriver.common.by import By

from benchmarks.serve_load import Setup, measure
from benchmarks.shop_week import simulate_week
from bulk360 import RunSummary
from bulk360.apps.experiments import Arm, assign, create_experiment, find_experiment
from bulk360.apps.recommend import STRATEGIES, RecommendOptions, RecommendRun, recommend
from bulk360.load.cypher import clear_database
from bulk360.settings import Settings
from tests.helpers.browser import chromium, console_errors, screenshot
from tests.helpers.cli import bulk360_cli, cli_env
from tests.helpers.databases import recreate_database, sample_control
from tests.helpers.neo4j import build_with_admin_mode
from tests.helpers.redis import redis_server
from tests.helpers.services import cypher, run_services
from tests.helpers.serving import fuzz_api, serving

SHOP_CONTROL_DB = "bulk360_test_shop_control"
PREFIX = "bulk360_test_"
SHOP_DB = PREFIX + "shop"
TOP_N = 10


BRANDS_DB = PREFIX + "brands"
# A table without a key: repeated codes (the first row in the table wins), a NULL one, and a
# brand no product has; most products' brands are not in it (orphans of MADE_BY).
BRANDS_SQL = """
CREATE TABLE brands (code text, note text);
INSERT INTO brands VALUES ('Acme', 'first Acme'), ('Borealis', 'first Borealis'),
    ('Acme', 'second Acme'), (NULL, 'no code'), ('Zenith', 'first Zenith'),
    ('Borealis', 'second Borealis'), ('Acme', 'third Acme');
"""


@pytest.fixture(scope="module")
def shop_settings(
    settings: Settings, pg_conninfo: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Both samples in one control database, and a brands table with repeated keys."""
    shop = sample_control(
        settings,
        SHOP_CONTROL_DB,
        tmp_path_factory.mktemp("shop"),
        PREFIX,
        "ecommerce",
        "customer360",
    )
    recreate_database(settings, BRANDS_DB)
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": BRANDS_DB}) as conn:
        conn.execute(BRANDS_SQL)  # type: ignore[arg-type]
    with psycopg.connect(**shop.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user,"
            " db_password_env) VALUES ('brands', %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, BRANDS_DB, settings.etl_db_user],
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label, key_columns)"
            " VALUES ('brands', 'brands', 'Brand', '{code}')"
        )
        conn.execute(
            "INSERT INTO relationship_mappings (relationship_type, from_label, from_alias,"
            " to_label, to_alias, join_condition) VALUES"
            " ('MADE_BY', 'Product', 'p', 'Brand', 'b', 'p.brand = b.code')"
        )
    return shop


@pytest.fixture(scope="module")
def shop_run(shop_settings: Settings, neo4j_driver: Driver) -> RunSummary:
    """Both samples and the brands built by admin mode into one graph (its store checked by
    neo4j-admin database check), Neo4j running again afterwards."""
    return build_with_admin_mode(shop_settings)


def shop_sql_write(settings: Settings, statement: str) -> None:
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": SHOP_DB}) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def shop_sql(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": SHOP_DB}) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


# What each label and relationship type must hold, as the same joins in SQL.
EXPECTED_SQL = {
    "Customer": "SELECT count(*) FROM customers",
    "Category": "SELECT count(*) FROM categories",
    "Product": "SELECT count(*) FROM products",
    "Order": "SELECT count(*) FROM orders",
    "PLACED": "SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id",
    "CONTAINS": "SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id"
    " JOIN products p ON p.id = i.product_id",
    "IN_CATEGORY": "SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id",
    "SUBCATEGORY_OF": "SELECT count(*) FROM categories c JOIN categories p ON p.id = c.parent_id",
    **{
        kind: "SELECT count(*) FROM customers c JOIN events e ON e.customer_id = c.id"
        f" JOIN products p ON p.id = e.product_id WHERE e.event_type = '{event}'"
        for kind, event in (
            ("VIEWED", "view"),
            ("ADDED_TO_CART", "add_to_cart"),
            ("PURCHASED", "purchase"),
        )
    },
}


def test_both_samples_and_repeated_keys_make_one_graph(
    shop_settings: Settings, shop_run: RunSummary, neo4j_driver: Driver
) -> None:
    assert shop_run.status == "succeeded" and shop_run.ledger_balanced
    assert shop_run.nodes["Account"] == 400 and shop_run.nodes["Customer"] == 3000
    # One node per code, from its first row; the NULL code and the repeats are rejected.
    brands = cypher(
        neo4j_driver, "MATCH (b:Brand) RETURN b.code AS code, b.note AS note ORDER BY code"
    )
    assert [(b["code"], b["note"]) for b in brands] == [
        ("Acme", "first Acme"),
        ("Borealis", "first Borealis"),
        ("Zenith", "first Zenith"),
    ]
    with psycopg.connect(**shop_settings.control_conninfo()) as conn:
        ledger = conn.execute(
            "SELECT rows_processed, rows_written, rows_rejected, rows_duplicate, ledger_balanced"
            " FROM etl_table_logs WHERE run_id = %s AND label = 'Brand'",
            [shop_run.run_id],
        ).fetchone()
        made_by = conn.execute(
            "SELECT rows_processed, rows_written, rows_orphaned FROM etl_table_logs"
            " WHERE run_id = %s AND relationship_type = 'MADE_BY'",
            [shop_run.run_id],
        ).fetchone()
    assert ledger == (7, 3, 1, 3, True)
    # Products of brands the table has relate; the others are orphans.
    with_brand = shop_sql(
        shop_settings, "SELECT count(*) FROM products WHERE brand IN ('Acme', 'Borealis')"
    )[0][0]
    assert made_by == (2000, with_brand, 2000 - with_brand)
    graph = cypher(neo4j_driver, "MATCH (:Product)-[r:MADE_BY]->(:Brand) RETURN count(r) AS n")
    assert graph[0]["n"] == with_brand > 0


def test_shop_graph_counts_equal_the_same_joins_in_sql(
    shop_settings: Settings, shop_run: RunSummary, neo4j_driver: Driver
) -> None:
    assert shop_run.status == "succeeded"
    for name, query in EXPECTED_SQL.items():
        expected = shop_sql(shop_settings, query)[0][0]
        if name.isupper():
            graph = cypher(neo4j_driver, f"MATCH ()-[r:`{name}`]->() RETURN count(r) AS n")
        else:
            graph = cypher(neo4j_driver, f"MATCH (n:`{name}`) RETURN count(n) AS n")
        assert expected > 0, name
        assert graph[0]["n"] == expected, name
    # Ids collide across tables (customer 1, order 1, product 1) and stay apart per label.
    ones = cypher(
        neo4j_driver,
        "MATCH (n) WHERE n.id = 1 AND (n:Customer OR n:Order OR n:Product OR n:Category)"
        " RETURN count(n) AS n",
    )
    assert ones[0]["n"] == 4
    # Top-level categories have no parent: a NULL key refers to nothing, it is no orphan.
    with psycopg.connect(**shop_settings.control_conninfo()) as conn:
        orphaned = dict(
            conn.execute(
                "SELECT relationship_type, rows_orphaned FROM etl_table_logs"
                " WHERE run_id = %s AND object_kind = 'relationship'",
                [shop_run.run_id],
            ).fetchall()
        )
    assert orphaned["SUBCATEGORY_OF"] == orphaned["PLACED"] == orphaned["CONTAINS"] == 0
    # The event relationships carry their time, the order lines quantity and unit price.
    typed = cypher(
        neo4j_driver,
        "MATCH ()-[v:VIEWED]->() WITH v LIMIT 1 MATCH ()-[c:CONTAINS]->() WITH v, c LIMIT 1"
        " RETURN valueType(v.occurred_at) AS at, valueType(c.quantity) AS q,"
        " valueType(c.unit_price) AS price",
    )[0]
    assert typed == {
        "at": "ZONED DATETIME NOT NULL",
        "q": "INTEGER NOT NULL",
        "price": "FLOAT NOT NULL",
    }


@pytest.fixture(scope="module")
def recommended(
    shop_settings: Settings, shop_run: RunSummary, neo4j_driver: Driver
) -> RecommendRun:
    return recommend(
        shop_settings,
        neo4j_driver,
        RecommendOptions(strategies=STRATEGIES, top_n=TOP_N, eval_customers=300),
    )


def stored(
    settings: Settings, rec_run_id: int, strategy: str | None = None
) -> list[tuple[Any, ...]]:
    with psycopg.connect(**settings.control_conninfo()) as conn:
        return conn.execute(
            "SELECT strategy, customer_key, rank, product_key, cold_start FROM recommendations"
            " WHERE rec_run_id = %s AND (%s::text IS NULL OR strategy = %s)"
            " ORDER BY strategy, customer_key, rank",
            [rec_run_id, strategy, strategy],
        ).fetchall()


def test_recommendations_never_include_purchased_products(
    shop_settings: Settings, recommended: RecommendRun
) -> None:
    rows = stored(shop_settings, recommended.rec_run_id)
    customers = shop_sql(shop_settings, "SELECT count(*) FROM customers")[0][0]
    assert len(rows) == len(STRATEGIES) * customers * TOP_N
    purchased = {
        (str(c), str(p))
        for c, p in shop_sql(
            shop_settings,
            "SELECT o.customer_id, i.product_id FROM orders o JOIN order_items i ON i.order_id = o.id"
            " UNION SELECT customer_id, product_id FROM events WHERE event_type = 'purchase'",
        )
    }
    assert len(purchased) > 1000
    recommended_pairs = {(customer, product) for _, customer, _, product, _ in rows}
    assert not recommended_pairs & purchased
    # Most lists come from the strategies themselves, not from the cold start.
    for strategy in STRATEGIES[:-1]:
        share = sum(r[4] for r in rows if r[0] == strategy) / (customers * TOP_N)
        assert share < 0.5, strategy
    for strategy, quality in recommended.quality.items():
        assert quality["evaluated"] == 300, strategy
        assert 0 < quality["hit_rate"] <= 1, strategy


def test_customers_without_history_get_the_cold_start(
    shop_settings: Settings, recommended: RecommendRun
) -> None:
    newcomers = [
        str(c)
        for (c,) in shop_sql(
            shop_settings,
            "SELECT id FROM customers c WHERE NOT EXISTS (SELECT FROM events e WHERE e.customer_id = c.id)"
            " AND NOT EXISTS (SELECT FROM orders o WHERE o.customer_id = c.id) ORDER BY id",
        )
    ]
    assert len(newcomers) == 300
    # Best sellers: distinct buyers, then distinct customers with any event, then the key as text.
    best_sellers = [
        str(p)
        for (p,) in shop_sql(
            shop_settings,
            "SELECT product_id FROM events GROUP BY product_id ORDER BY"
            " count(DISTINCT customer_id) FILTER (WHERE event_type = 'purchase') DESC,"
            f" count(DISTINCT customer_id) DESC, product_id::text LIMIT {TOP_N}",
        )
    ]
    rows = stored(shop_settings, recommended.rec_run_id)
    for strategy in STRATEGIES:
        lists: dict[str, list[str]] = {}
        for kind, customer, _, product, cold in rows:
            if kind == strategy and customer in newcomers:
                assert cold, (strategy, customer)
                lists.setdefault(customer, []).append(product)
        assert sorted(lists) == sorted(newcomers), strategy
        assert all(items == best_sellers for items in lists.values()), strategy


def test_communities_are_stored_and_results_repeat_for_a_seed(
    shop_settings: Settings, recommended: RecommendRun, neo4j_driver: Driver
) -> None:
    engaged = shop_sql(shop_settings, "SELECT count(DISTINCT customer_id) FROM events")[0][0]
    graph = cypher(
        neo4j_driver, "MATCH (c:Customer) WHERE c.community IS NOT NULL RETURN count(c) AS n"
    )
    assert graph[0]["n"] == engaged
    assert 1 < recommended.communities < engaged
    options = RecommendOptions(
        strategies=("community", "pagerank"),
        top_n=TOP_N,
        eval_customers=50,
        write_communities=False,
    )
    again = recommend(shop_settings, neo4j_driver, options)
    for strategy in options.strategies:
        first = stored(shop_settings, again.rec_run_id, strategy)
        assert first and first == stored(shop_settings, recommended.rec_run_id, strategy)


def test_every_stored_recommendation_says_why_and_the_counts_it_names_are_true(
    shop_settings: Settings, recommended: RecommendRun
) -> None:
    with psycopg.connect(**shop_settings.control_conninfo()) as conn:
        reasons = conn.execute(
            "SELECT customer_key, product_key, reason FROM recommendations"
            " WHERE rec_run_id = %s AND strategy = 'weighted' ORDER BY customer_key, rank",
            [recommended.rec_run_id],
        ).fetchall()
        assert conn.execute(
            "SELECT count(*) FROM recommendations WHERE rec_run_id = %s AND reason IS NULL",
            [recommended.rec_run_id],
        ).fetchone() == (0,)
    kinds = {reason.split(" ")[0] for _, _, reason in reasons}
    # "new": the sample's one product nobody has seen, listed by its attributes.
    assert {"bought", "in", "a"} <= kinds <= {"bought", "in", "a", "new"}, kinds
    product_of = dict(shop_sql(shop_settings, "SELECT name, id FROM products"))
    category_of = dict(shop_sql(shop_settings, "SELECT id::text, category_id FROM products"))
    category_named = dict(shop_sql(shop_settings, "SELECT name, id FROM categories"))
    bought = [r for r in reasons if r[2].startswith("bought ")][:25]
    favourite = [r for r in reasons if r[2].startswith("in your favourite category ")][:25]
    assert bought and favourite
    for customer, product, reason in bought:
        name, count = re.fullmatch(
            r"bought (.+); (\d+) customers who bought it bought this", reason
        ).groups()  # type: ignore[union-attr]
        both = shop_sql(
            shop_settings,
            "WITH bought AS (SELECT customer_id, product_id FROM events"
            " WHERE event_type = 'purchase' UNION SELECT o.customer_id, i.product_id"
            " FROM orders o JOIN order_items i ON i.order_id = o.id)"
            " SELECT count(*) FROM bought a JOIN bought b USING (customer_id)"
            f" WHERE a.product_id = {product_of[name]} AND b.product_id = {int(product)}",
        )[0][0]
        mine = (
            shop_sql(
                shop_settings,
                f"SELECT count(*) FROM events WHERE customer_id = {int(customer)} AND product_id ="
                f" {product_of[name]} AND event_type = 'purchase'",
            )[0][0]
            + shop_sql(
                shop_settings,
                f"SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE"
                f" o.customer_id = {int(customer)} AND i.product_id = {product_of[name]}",
            )[0][0]
        )
        assert mine > 0, reason  # the customer bought what the reason names
        assert both == int(count), (reason, both)
    for _, product, reason in favourite:
        category = reason.removeprefix("in your favourite category ")
        assert category_of[product] == category_named[category], reason


def test_node2vec_similar_products_share_a_category_more_often_than_chance(
    shop_settings: Settings, recommended: RecommendRun
) -> None:
    assert recommended.quality["node2vec"]["evaluated"] == 300
    assert recommended.similar > 0
    with psycopg.connect(**shop_settings.control_conninfo()) as conn:
        pairs = conn.execute(
            "SELECT product_key, similar_key FROM product_similarities WHERE rec_run_id = %s",
            [recommended.rec_run_id],
        ).fetchall()
    category = dict(shop_sql(shop_settings, "SELECT id::text, category_id FROM products"))
    same = sum(category[a] == category[b] for a, b in pairs) / len(pairs)
    # Chance: two products drawn from the catalogue share a category this often.
    sizes = shop_sql(shop_settings, "SELECT count(*) FROM products GROUP BY category_id")
    total = sum(n for (n,) in sizes)
    chance = sum(n * (n - 1) for (n,) in sizes) / (total * (total - 1))
    assert same > 2 * chance, (same, chance)


def test_evaluate_measures_strategies_against_baselines_on_a_split_by_time(
    shop_settings: Settings, shop_run: RunSummary
) -> None:
    """`recommend evaluate --json` on the shop's graph: the figures, their intervals, the counts
    (checked against SQL), and the ordering a shop would expect (a graph strategy and ALS far
    above random); a cut after the last purchase is one line, exit 2, and nothing is stored."""
    (last,) = shop_sql(
        shop_settings,
        "SELECT max(t) FROM (SELECT max(occurred_at) AS t FROM events WHERE event_type = 'purchase'"
        " UNION ALL SELECT max(created_at) FROM orders) AS times",
    )[0]
    methods = ("community", "als", "random")
    printed = bulk360_cli(
        shop_settings,
        shop_settings.import_dir,
        *("recommend", "evaluate", "--holdout-days", "30", "--json"),
        *(arg for m in methods for arg in ("--strategy", m)),
    )
    assert printed.returncode == 0, printed.stdout + printed.stderr
    result = json.loads(printed.stdout)
    assert set(result["methods"]) == set(methods)
    cut = datetime.fromisoformat(result["cut"])
    assert cut == last - timedelta(days=30)
    (customers,) = shop_sql(shop_settings, "SELECT count(*) FROM customers")[0]
    assert result["customers"] + result["left_out"] == customers
    for name, row in result["methods"].items():
        assert row["customers"] == result["customers"] > 100
        for metric, figure in row["metrics"].items():
            assert 0 <= figure["low"] <= figure["value"] <= figure["high"] <= 1, (name, metric)
    ndcg = {m: result["methods"][m]["metrics"]["ndcg@10"] for m in methods}
    assert ndcg["community"]["low"] > ndcg["random"]["high"]
    assert ndcg["als"]["low"] > ndcg["random"]["high"]
    runs_before = _recommendation_runs(shop_settings)
    late = bulk360_cli(
        shop_settings,
        shop_settings.import_dir,
        *("recommend", "evaluate", "--cut", "2100-01-01T00:00:00", "--strategy", "popular"),
    )
    assert late.returncode == 2, late.stdout + late.stderr
    assert "no purchases after the cut" in late.stderr and "Traceback" not in late.stderr
    assert len(late.stderr.strip().splitlines()) == 1, late.stderr
    assert _recommendation_runs(shop_settings) == runs_before


def _recommendation_runs(settings: Settings) -> int:
    with psycopg.connect(**settings.control_conninfo()) as conn:
        return int(conn.execute("SELECT count(*) FROM recommendation_runs").fetchone()[0])  # type: ignore[index]


def test_embeddings_are_exported_with_their_labels_and_keys(
    shop_settings: Settings, shop_run: RunSummary, tmp_path: Path
) -> None:
    path = tmp_path / "vectors.parquet"
    result = bulk360_cli(
        shop_settings,
        shop_settings.import_dir,
        *("recommend", "--strategy", "popular", "--eval-customers", "10"),
        *("--export-embeddings", str(path)),
    )
    assert result.returncode == 0, result.output
    vectors = pl.read_parquet(path)
    assert vectors.columns == ["label", "key", "vector"]
    assert vectors.schema["vector"] == pl.Array(pl.Float32, RecommendOptions().dimensions)
    keys = {
        label: set(vectors.filter(pl.col("label") == label).get_column("key"))
        for label in ("Customer", "Product", "Category")
    }
    engaged = {
        str(c) for (c,) in shop_sql(shop_settings, "SELECT DISTINCT customer_id FROM events")
    }
    assert keys["Customer"] == engaged
    products = {
        str(p) for (p,) in shop_sql(shop_settings, "SELECT DISTINCT product_id FROM events")
    }
    assert keys["Product"] == products
    categories = {str(k) for (k,) in shop_sql(shop_settings, "SELECT id FROM categories")}
    assert keys["Category"] <= categories and keys["Category"]
    assert vectors.height == sum(len(k) for k in keys.values())


NEW_PRODUCTS = (
    "UNWIND range(1, 50) AS n MATCH (k:Category {id: 7 + n % 24})"
    " CREATE (:Product {id: 900000 + n, name: 'New ' + n, price: 5.0 + n * 10,"
    " brand: ['Acme', 'Borealis', 'Cobalt', 'Dune', 'Ember'][n % 5]})-[:IN_CATEGORY]->(k)"
)


def test_new_products_reach_lists_by_their_attributes(
    shop_settings: Settings, recommended: RecommendRun, neo4j_driver: Driver
) -> None:
    """50 products nobody has seen yet (as a sync would add them) reach the lists of customers
    whose categories, brands and prices they match; the hit rates stay within noise."""
    options = RecommendOptions(
        strategies=("weighted", "popular"), top_n=TOP_N, eval_customers=300, write_communities=False
    )
    cypher(neo4j_driver, NEW_PRODUCTS)
    try:
        again = recommend(shop_settings, neo4j_driver, options)
        with psycopg.connect(**shop_settings.control_conninfo()) as conn:
            rows = conn.execute(
                "SELECT customer_key, rank, product_key, cold_start, reason FROM recommendations"
                " WHERE rec_run_id = %s AND strategy = 'weighted' AND product_key::int > 900000",
                [again.rec_run_id],
            ).fetchall()
    finally:
        cypher(neo4j_driver, "MATCH (p:Product) WHERE p.id > 900000 DETACH DELETE p")
        with psycopg.connect(**shop_settings.control_conninfo()) as conn:
            conn.execute(
                "DELETE FROM recommendation_runs WHERE rec_run_id > %s", [recommended.rec_run_id]
            )
    assert len({product for _, _, product, _, _ in rows}) >= 45
    assert all(cold and rank == TOP_N for _, rank, _, cold, _ in rows)
    by_brand = [r for r in rows if r[4].startswith("new from brand ")][:20]
    assert by_brand and all(r[4].startswith("new ") for r in rows)
    for customer, _, _, _, reason in by_brand:
        brand = reason.removeprefix("new from brand ").removesuffix(" you buy")
        engaged = shop_sql(
            shop_settings,
            "SELECT count(*) FROM events e JOIN products p ON p.id = e.product_id"
            f" WHERE e.customer_id = {int(customer)} AND p.brand = '{brand}'",
        )[0][0]
        assert engaged > 0, reason
    # One place of ten given to a new product: the held-out purchases are found as often,
    # within the noise of 300 customers (one standard error is about 0.026).
    for strategy in options.strategies:
        before = recommended.quality[strategy]["hit_rate"]
        assert abs(again.quality[strategy]["hit_rate"] - before) <= 0.03, strategy


@pytest.fixture(scope="module")
def api(shop_settings: Settings, recommended: RecommendRun) -> Iterator[str]:
    """``bulk360 serve`` in a child process on a free port; yields its base URL."""
    with serving(shop_settings) as url:
        yield url


def test_api_answers_every_endpoint_over_http(
    api: str,
    shop_settings: Settings,
    shop_run: RunSummary,
    recommended: RecommendRun,
    neo4j_driver: Driver,
) -> None:
    assert httpx.get(api + "/").json() == {"status": "ok"}
    health = httpx.get(api + "/health")
    assert (health.status_code, health.json()) == (200, {"ok": True})
    runs = httpx.get(api + "/runs").json()
    assert runs[0]["run_id"] == shop_run.run_id and runs[0]["status"] == "succeeded"
    one = httpx.get(f"{api}/runs/{shop_run.run_id}").json()
    assert one["run"]["mode"] == "admin"
    assert {t["relationship_type"] for t in one["tables"]} >= {"PLACED", "VIEWED", "PURCHASED"}
    assert httpx.get(api + "/runs/987654").status_code == 404
    assert httpx.get(api + "/runs/zero").status_code == 422
    assert (
        "/customers/{customer_id}/recommendations"
        in httpx.get(api + "/openapi.json").json()["paths"]
    )
    assert httpx.get(api + "/docs").status_code == 200

    answer = httpx.get(
        api + "/customers/5/recommendations", params={"strategy": "community", "limit": 4}
    )
    body = answer.json()
    assert answer.status_code == 200
    # Served from the newest run that stored a community list for the customer.
    assert (body["source"], body["strategy"]) == ("stored", "community")
    assert body["rec_run_id"] >= recommended.rec_run_id
    expected = [
        row[3] for row in stored(shop_settings, body["rec_run_id"], "community") if row[1] == "5"
    ]
    assert [i["product"] for i in body["items"]] == expected[:4]
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4]
    for params in ({"strategy": "bogus"}, {"limit": 0}, {"limit": 101}, {"limit": "ten"}):
        assert httpx.get(api + "/customers/5/recommendations", params=params).status_code == 422
    assert httpx.get(api + "/customers/no-such-customer/recommendations").status_code == 404

    assert "/products/{product_id}/similar" in httpx.get(api + "/openapi.json").json()["paths"]
    similar = httpx.get(api + "/products/1/similar", params={"limit": 5}).json()
    assert (similar["source"], similar["rec_run_id"]) == ("embedding", recommended.rec_run_id)
    assert [i["rank"] for i in similar["items"]] == [1, 2, 3, 4, 5]
    assert "1" not in [i["product"] for i in similar["items"]]

    listed = httpx.get(api + "/customers/5/recommendations", params={"limit": 1}).json()
    assert listed["items"][0]["reason"], listed
    product = listed["items"][0]["product"]
    path = httpx.get(f"{api}/customers/5/recommendations/{product}/why").json()
    assert (path["nodes"][0]["label"], path["nodes"][0]["key"]) == ("Customer", "5")
    assert (path["nodes"][-1]["label"], path["nodes"][-1]["key"]) == ("Product", product)
    assert len(path["relationships"]) == len(path["nodes"]) - 1 >= 2
    assert set(path["relationships"]) <= {"PURCHASED", "PLACED", "CONTAINS", "IN_CATEGORY"}
    assert httpx.get(f"{api}/customers/5/recommendations/no-such/why").status_code == 404
    # A product that arrived after the batch has no vector: the products in the same orders.
    cypher(
        neo4j_driver,
        "MATCH (a:Product {id: 1}), (b:Product {id: 2})"
        " CREATE (:Order {id: 990001})-[:CONTAINS]->(:Product {id: 990002})<-[:CONTAINS]-"
        "(:Order {id: 990003}), (o:Order {id: 990004})-[:CONTAINS]->(a), (o)-[:CONTAINS]->(b)"
        " WITH a, b MATCH (n:Product {id: 990002}), (o1:Order {id: 990001}),"
        " (o3:Order {id: 990003}) CREATE (o1)-[:CONTAINS]->(a), (o3)-[:CONTAINS]->(a),"
        " (o3)-[:CONTAINS]->(b)",
    )
    try:
        bought = httpx.get(f"{api}/products/990002/similar").json()
    finally:
        cypher(
            neo4j_driver,
            "MATCH (n) WHERE (n:Order OR n:Product) AND n.id IN [990001, 990002, 990003, 990004]"
            " DETACH DELETE n",
        )
    assert bought["source"] == "copurchase", bought
    assert [(i["product"], i["score"]) for i in bought["items"]] == [("1", 2.0), ("2", 1.0)]
    assert httpx.get(api + "/products/no-such-product/similar").status_code == 404

    # A customer who arrived after the batch: the live parameterized Cypher query answers.
    cypher(
        neo4j_driver,
        "MATCH (p:Product {id: 1}) CREATE (:Customer {id: 777001})-[:VIEWED]->(p)"
        " CREATE (:Customer {id: 777002})",
    )
    try:
        live = httpx.get(api + "/customers/777001/recommendations", params={"limit": 3}).json()
        assert (live["source"], len(live["items"]), live["items"][0]["cold_start"]) == (
            "live",
            3,
            False,
        )
        cold = httpx.get(api + "/customers/777002/recommendations", params={"limit": 3}).json()
        assert (cold["source"], cold["items"][0]["cold_start"]) == ("live", True)
        assert cold["items"][0]["product"] == "1"  # the best seller
    finally:
        cypher(neo4j_driver, "MATCH (c:Customer) WHERE c.id IN [777001, 777002] DETACH DELETE c")

    run_services("neo4j", "stop")
    try:
        down = httpx.get(api + "/health", timeout=30)
        assert down.status_code == 503
        assert down.json()["ok"] is False and list(down.json()["failed"]) == ["neo4j"]
    finally:
        run_services("neo4j", "start")
    assert httpx.get(api + "/health", timeout=30).status_code == 200


def test_the_dashboard_shows_a_customer_s_lists_per_strategy(
    api: str, shop_settings: Settings, recommended: RecommendRun, tmp_path: Path
) -> None:
    rows = stored(shop_settings, recommended.rec_run_id)
    customer = rows[0][1]
    expected: dict[str, list[str]] = {}
    for strategy, key, _, product, _ in rows:
        if key == customer:
            expected.setdefault(strategy, []).append(product)
    with chromium() as browser:
        browser.get(f"{api}/ui/customer?id={customer}")
        assert console_errors(browser) == []
        screenshot(browser, tmp_path, "customer")
        shown = {
            table.get_attribute("data-strategy"): [
                row.find_elements(By.TAG_NAME, "td")[1].text
                for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            ]
            for table in browser.find_elements(By.CSS_SELECTOR, "table[data-strategy]")
        }
        reasons = [
            cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(5)")
        ]
    assert shown == expected and len(shown) >= 4
    assert reasons and all(reasons), reasons


def _post_event(api: str, **body: Any) -> httpx.Response:
    return httpx.post(api + "/events", json={"event_id": str(uuid.uuid4()), **body})


def test_an_experiment_serves_each_customer_their_arm_and_records_events_once(
    api: str, shop_settings: Settings, recommended: RecommendRun
) -> None:
    made = bulk360_cli(
        shop_settings,
        shop_settings.import_dir,
        *("experiments", "create", "live", "--arm", "a=weighted", "--arm", "b=copurchase"),
        *("--days", "1"),
    )
    assert made.returncode == 0, made.stdout + made.stderr
    try:
        with psycopg.connect(**shop_settings.control_conninfo()) as conn:
            experiment = find_experiment(conn, "live")
        assert experiment is not None
        for customer in ("5", "6", "7", "8"):
            first = httpx.get(f"{api}/customers/{customer}/recommendations").json()
            again = httpx.get(f"{api}/customers/{customer}/recommendations").json()
            arm = assign(experiment, customer)
            assert (first["experiment"], first["arm"]) == ("live", arm.name)
            assert (again["arm"], again["strategy"]) == (arm.name, arm.strategy)
            assert first["recommendation_id"] != again["recommendation_id"]
            expected = [
                r[3]
                for r in stored(shop_settings, recommended.rec_run_id, arm.strategy)
                if r[1] == customer
            ]
            assert [i["product"] for i in first["items"]] == expected
        # A strategy asked for is served outside the experiment; a named one must run.
        plain = httpx.get(f"{api}/customers/5/recommendations", params={"strategy": "popular"})
        assert (plain.json()["experiment"], plain.json()["strategy"]) == (None, "popular")
        named = httpx.get(f"{api}/experiments/nope/customers/5/recommendations")
        assert named.status_code == 404 and "nope" in named.json()["detail"]
        arm = assign(experiment, "5")
        live = httpx.get(f"{api}/experiments/live/customers/5/recommendations").json()
        assert (live["experiment"], live["arm"], live["strategy"]) == (
            "live",
            arm.name,
            arm.strategy,
        )

        served = first["recommendation_id"]
        product = first["items"][0]["product"]
        event = {"recommendation_id": served, "kind": "impression", "product": product}
        event_id = str(uuid.uuid4())
        new = httpx.post(api + "/events", json={"event_id": event_id, **event})
        assert (new.status_code, new.json()) == (201, {"event_id": event_id, "recorded": True})
        repeat = httpx.post(api + "/events", json={"event_id": event_id, **event})
        assert (repeat.status_code, repeat.json()["recorded"]) == (200, False)
        clash = {"event_id": event_id, **event, "kind": "click"}
        assert httpx.post(api + "/events", json=clash).status_code == 409
        bought = {**event, "kind": "purchase", "amount": 19.99}
        assert _post_event(api, **bought).status_code == 201
        for unknown in (
            {**event, "recommendation_id": str(uuid.uuid4())},  # never served
            {**event, "product": "not-on-the-list"},
        ):
            answer = _post_event(api, **unknown)
            assert answer.status_code == 404, (unknown, answer.text)
        for wrong in (
            {**event, "kind": "bought"},
            {**event, "kind": "purchase"},  # no amount
            {**event, "kind": "click", "amount": 5},  # an amount on a click
            {**event, "amount": -1, "kind": "purchase"},
            {**event, "occurred_at": "2026-11-30T10:00:00"},  # no UTC offset
            {**event, "extra": 1},
            {"recommendation_id": served, "kind": "click"},  # no product
        ):
            answer = _post_event(api, **wrong)
            assert answer.status_code == 422, (wrong, answer.text)
        assert httpx.post(api + "/events", content=b"{not json").status_code == 422
        with psycopg.connect(**shop_settings.control_conninfo()) as conn:
            kept = conn.execute(
                "SELECT kind, product_key, amount::float8 FROM recommendation_events"
                " WHERE recommendation_id = %s ORDER BY kind",
                [served],
            ).fetchall()
        assert kept == [("impression", product, None), ("purchase", product, 19.99)]
    finally:
        ended = bulk360_cli(shop_settings, shop_settings.import_dir, "experiments", "end", "live")
        assert ended.returncode == 0, ended.stdout + ended.stderr
    after = httpx.get(f"{api}/customers/5/recommendations").json()
    assert (after["experiment"], after["strategy"]) == (None, "weighted")


# The report's figures per arm, computed by SQL from the same rows.
REPORT_SQL = """
WITH lists AS (SELECT * FROM served_recommendations WHERE experiment = %(name)s),
shown AS (SELECT DISTINCT recommendation_id, product_key FROM recommendation_events
          WHERE kind = 'impression'),
clicked AS (SELECT DISTINCT recommendation_id, product_key FROM recommendation_events
            WHERE kind = 'click'),
bought AS (SELECT l.arm, l.customer_key, e.amount::float8 AS amount FROM recommendation_events e
           JOIN lists l USING (recommendation_id) WHERE e.kind = 'purchase')
SELECT l.arm,
       count(DISTINCT l.customer_key) AS customers,
       count(DISTINCT l.recommendation_id) AS lists,
       (SELECT count(*) FROM shown s JOIN lists x USING (recommendation_id) WHERE x.arm = l.arm)
           AS impressions,
       (SELECT count(*) FROM shown s JOIN clicked USING (recommendation_id, product_key)
           JOIN lists x USING (recommendation_id) WHERE x.arm = l.arm) AS clicks,
       (SELECT count(DISTINCT customer_key) FROM bought b WHERE b.arm = l.arm) AS buyers,
       (SELECT count(*) FROM bought b WHERE b.arm = l.arm) AS purchases,
       (SELECT avg(amount) FROM bought b WHERE b.arm = l.arm) AS aov,
       (SELECT stddev_samp(amount) FROM bought b WHERE b.arm = l.arm) AS aov_sd,
       (SELECT sum(amount) FROM bought b WHERE b.arm = l.arm) AS revenue
FROM lists l GROUP BY l.arm ORDER BY l.arm
"""


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return centre - half, centre + half


def test_a_simulated_week_reports_what_sql_computes_from_the_same_events(
    api: str, shop_settings: Settings, recommended: RecommendRun, neo4j_driver: Driver
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    create_experiment(
        shop_settings,
        "week",
        [Arm("weighted", "weighted", 1), Arm("node2vec", "node2vec", 1)],
        now - timedelta(days=7),
        now,
    )
    week = simulate_week(shop_settings, neo4j_driver, "week", seed=3)
    assert week.lists > 3000 and week.events > week.lists * 5
    printed = bulk360_cli(
        shop_settings, shop_settings.import_dir, "experiments", "report", "week", "--json"
    )
    assert printed.returncode == 0, printed.stdout + printed.stderr
    cli = json.loads(printed.stdout)
    served = httpx.get(api + "/experiments/week").json()
    assert served["arms"] == cli["arms"]
    assert httpx.get(api + "/experiments/no-such").status_code == 404
    with psycopg.connect(**shop_settings.control_conninfo(), row_factory=dict_row) as conn:
        expected = {r["arm"]: r for r in conn.execute(REPORT_SQL, {"name": "week"}).fetchall()}
    assert sorted(expected) == ["node2vec", "weighted"]
    for arm in served["arms"]:
        sql = expected[arm["arm"]]
        for figure in ("customers", "lists", "impressions", "clicks", "buyers", "purchases"):
            assert arm[figure] == sql[figure], (arm["arm"], figure)
        assert arm["purchases"] > 10 and arm["revenue"] == pytest.approx(sql["revenue"])
        assert arm["ctr"]["value"] == pytest.approx(sql["clicks"] / sql["impressions"])
        assert (arm["ctr"]["low"], arm["ctr"]["high"]) == pytest.approx(
            _wilson(sql["clicks"], sql["impressions"])
        )
        conversion = arm["conversion_rate"]
        assert conversion["value"] == pytest.approx(sql["buyers"] / sql["customers"])
        assert (conversion["low"], conversion["high"]) == pytest.approx(
            _wilson(sql["buyers"], sql["customers"])
        )
        aov = arm["average_order_value"]
        margin = student_t.ppf(0.975, sql["purchases"] - 1) * sql["aov_sd"]
        margin /= math.sqrt(sql["purchases"])
        assert (aov["value"], aov["low"], aov["high"]) == pytest.approx(
            (sql["aov"], sql["aov"] - margin, sql["aov"] + margin)
        )
    # Each arm holds about half the customers who visited.
    customers = [arm["customers"] for arm in served["arms"]]
    assert abs(customers[0] - customers[1]) / sum(customers) < 0.1, customers


def _weighted(url: str, customer: str) -> httpx.Response:
    answer = httpx.get(f"{url}/customers/{customer}/recommendations?strategy=weighted&limit=20")
    assert answer.status_code == 200, answer.text
    return answer


def _eventually(what: str, check: Any, seconds: float = 30) -> Any:
    """``check()``'s answer once it is truthy; the cache hears of changes asynchronously."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_the_cache_serves_the_new_list_after_a_purchase_is_synced_and_a_new_run(
    api: str, shop_settings: Settings, recommended: RecommendRun, neo4j_driver: Driver
) -> None:
    customer = next(
        key
        for key, group in groupby(
            stored(shop_settings, recommended.rec_run_id, "weighted"), key=lambda row: row[1]
        )
        if len(rows := list(group)) == TOP_N and not any(row[4] for row in rows)
    )
    with (
        redis_server() as redis_url,
        serving(shop_settings, "--workers", "2", BULK360_REDIS_URL=redis_url) as shared,
    ):
        apis = {"one worker, memory": api, "two workers, Redis": shared}
        before = {}
        for name, url in apis.items():
            first, again = _weighted(url, customer), _weighted(url, customer)
            # The module's server may have served this list before: then it is cached already.
            assert first.headers["cache-status"] in (
                "bulk360; hit",
                "bulk360; fwd=uri-miss; stored",
            )
            assert again.headers["cache-status"] == "bulk360; hit", name
            assert again.json()["items"] == first.json()["items"]
            assert again.json()["recommendation_id"] != first.json()["recommendation_id"]
            before[name] = first.json()["items"]
        assert before["one worker, memory"] == before["two workers, Redis"]
        cached = redis.Redis.from_url(redis_url).keys("bulk360:lists:*")
        assert cached == [f"bulk360:lists:{recommended.rec_run_id}:weighted:{customer}".encode()]

        # The customer buys the list's first product; a sync through the command line writes it.
        bought = before["one worker, memory"][0]["product"]
        shop_sql_write(
            shop_settings,
            "INSERT INTO events (id, customer_id, product_id, event_type, occurred_at)"
            f" SELECT max(id) + 1, {int(customer)}, {int(bought)}, 'purchase', now() FROM events",
        )
        synced = bulk360_cli(shop_settings, shop_settings.import_dir, "run", "--mode", "sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "Traceback" not in synced.stdout + synced.stderr
        expected = [item["product"] for item in before["one worker, memory"][1:]]
        for name, url in apis.items():
            after = _eventually(
                f"{name}: the list still holds the product bought",
                lambda url=url: (
                    (a := _weighted(url, customer)).json()["items"][0]["product"] != bought and a
                ),
            )
            assert [item["product"] for item in after.json()["items"]] == expected, name
            assert [item["rank"] for item in after.json()["items"]] == list(range(1, TOP_N))
            assert after.json()["rec_run_id"] == recommended.rec_run_id
            assert _weighted(url, customer).headers["cache-status"] == "bulk360; hit", name

        # A new recommendation run: its lists are served, computed from the graph with the
        # purchase in it.
        rerun = recommend(
            shop_settings,
            neo4j_driver,
            RecommendOptions(
                strategies=("weighted",), top_n=4, eval_customers=50, write_communities=False
            ),
        )
        for name, url in apis.items():
            newer = _eventually(
                f"{name}: the new run's list is not served",
                lambda url=url: (
                    (a := _weighted(url, customer)).json()["rec_run_id"] == rerun.rec_run_id and a
                ),
            )
            products = [item["product"] for item in newer.json()["items"]]
            assert len(products) == 4 and bought not in products, name


def test_the_load_test_runs_without_an_error_and_the_cache_answers(
    shop_settings: Settings, recommended: RecommendRun
) -> None:
    """benchmarks/serve_load.py, shortly: every answer a 2xx under concurrent clients, on two
    workers sharing Redis (its figures are the benchmark's, not asserted here)."""
    environment = cli_env(shop_settings, shop_settings.import_dir)
    with redis_server() as redis_url:
        load = measure(
            shop_settings, Setup(2, True, redis_url), seconds=4, clients=16, environment=environment
        )
    assert load.errors == 0, load.first_errors
    assert load.requests > 50 and load.lists > 0
    assert 0 < load.cache_hits < load.lists


def test_the_api_answers_only_what_its_openapi_document_declares(
    shop_settings: Settings, shop_run: RunSummary, recommended: RecommendRun, tmp_path: Path
) -> None:
    token = "fuzzing-token"
    customers = [
        str(c) for (c,) in shop_sql(shop_settings, "SELECT id FROM customers WHERE id % 250 = 1")
    ]
    with serving(shop_settings, BULK360_API_TOKEN=token) as url:
        output = fuzz_api(
            url,
            tmp_path,
            max_examples=40,
            headers={"Authorization": f"Bearer {token}"},
            customer_id=[*customers, "2999", "777003"],  # stored lists, a newcomer, unknown
            run_id=[shop_run.run_id],
            product_id=["1", "17", "777004"],  # stored neighbours, and an unknown product
            name=["week", "no-such-experiment"],
        )
    # Every operation was reached, the guarded ones with and without the token.
    assert "Tested: 19" in output, output[-2000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1]


def test_check_passes_then_names_a_cleared_graph(
    api: str, shop_settings: Settings, shop_run: RunSummary, neo4j_driver: Driver, tmp_path: Path
) -> None:
    healthy = bulk360_cli(shop_settings, shop_settings.import_dir, "check", "--api-url", api)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "deployment is healthy" in healthy.stdout
    assert "FAIL" not in healthy.stdout

    clear_database(neo4j_driver, shop_settings.neo4j_database, batch_size=10_000)
    broken = bulk360_cli(shop_settings, shop_settings.import_dir, "check", "--api-url", api)
    assert broken.returncode == 6
    failed = [line for line in broken.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "graph counts" in failed[0], broken.stdout
    assert "differ from the manifest" in broken.stdout
    assert "1 check(s) failed: graph counts" in " ".join(broken.stderr.split())
