"""``bulk360 recommend``: top-N products per customer from the graph, by several strategies.

The graph is read once over Bolt as edge lists (customer-product events, order lines, product
categories) into Polars. The strategies then score (customer, product) candidates:

- ``weighted``: event-weighted item-to-item collaborative filtering (cosine similarity of the
  products' weighted customer vectors; ``view`` < ``add_to_cart`` < ``purchase`` by default);
- ``copurchase``: products bought in the same orders as the customer's purchases;
- ``pagerank``: personalized PageRank from the customer over the weighted customer-product graph
  (igraph);
- ``community``: what the customer's community (Louvain communities of the same graph, igraph;
  stored as the ``community`` property of the customer nodes) engages with most;
- ``node2vec``: the products nearest to the customer's vector among node2vec embeddings of the
  customer-product-category graph (:mod:`bulk360.apps.embeddings`; gensim's Word2Vec);
- ``popular``: the cold start — popular products of the customer's favourite categories, then
  popular products overall.

Products the customer already purchased are never recommended. Each stored row carries a short
reason (:mod:`bulk360.apps.reasons`). Every strategy's list is filled
up to N from the cold start (those rows are flagged), so a customer without history gets the
popular products. The lists go to the control database's ``recommendations`` table with the run
id and the strategy; the offline quality figure is the hit rate of each evaluated customer's last
purchase, held out of the data the strategy sees.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from neo4j import Driver
from psycopg.types.json import Jsonb

from bulk360.apps.content import NEW, new_products
from bulk360.apps.reasons import explain
from bulk360.apps.strategies import DEFAULT_WEIGHTS, STRATEGIES, RecommendOptions
from bulk360.control import connect_control
from bulk360.control.notify import notify
from bulk360.errors import ConfigError, one_line
from bulk360.graph import quoted
from bulk360.settings import Settings

if TYPE_CHECKING:
    import igraph

    from bulk360.apps.embeddings import Embeddings

__all__ = [
    "DEFAULT_WEIGHTS",
    "STRATEGIES",
    "GraphData",
    "RecommendOptions",
    "RecommendRun",
    "compute",
    "hit_rate",
    "read_graph",
    "recommend",
]


@dataclass(frozen=True)
class GraphData:
    """The edge lists the strategies use; keys are text."""

    customers: pl.DataFrame  # customer, element_id
    interactions: pl.DataFrame  # customer, product, type, weight, at
    order_lines: pl.DataFrame  # customer, order, product
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
                [events.select("customer", "product"), self.order_lines.select(pl.exclude("order"))]
            )
            .unique()
            .sort("customer", "product")
        )


def _records(driver: Driver, database: str, cypher: str) -> list[dict[str, Any]]:
    records, _, _ = driver.execute_query(cypher, database_=database, bookmark_manager_=None)
    return [record.data() for record in records]


def read_graph(driver: Driver, database: str, options: RecommendOptions) -> GraphData:
    """The customer-product events, order lines and categories, read over Bolt."""
    o, key = options, quoted(options.key_property)
    customer, product = quoted(o.customer_label), quoted(o.product_label)
    customers = _records(
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
    interactions = _records(
        driver,
        database,
        f"MATCH (c:{customer})-[r:{types}]->(p:{product}) "
        f"RETURN toString(c.{key}) AS customer, toString(p.{key}) AS product, type(r) AS type, "
        "toString(r.occurred_at) AS at",
    )
    lines = _records(
        driver,
        database,
        f"MATCH (c:{customer})-[:{quoted(o.placed_type)}]->(o:{quoted(o.order_label)})"
        f"-[:{quoted(o.contains_type)}]->(p:{product}) "
        f"RETURN DISTINCT toString(c.{key}) AS customer, elementId(o) AS order, "
        f"toString(p.{key}) AS product",
    )
    categories = _records(
        driver,
        database,
        f"MATCH (p:{product})-[:{quoted(o.in_category_type)}]->(k:{quoted(o.category_label)}) "
        f"RETURN toString(p.{key}) AS product, coalesce(toString(k.{key}), elementId(k)) AS category",
    )
    names = _records(
        driver,
        database,
        f"MATCH (p:{product}) WHERE p.{key} IS NOT NULL AND p.name IS NOT NULL "
        f"RETURN 'p' AS kind, toString(p.{key}) AS key, toString(p.name) AS name UNION ALL "
        f"MATCH (k:{quoted(o.category_label)}) WHERE k.name IS NOT NULL "
        f"RETURN 'k' AS kind, coalesce(toString(k.{key}), elementId(k)) AS key, "
        "toString(k.name) AS name",
    )
    attributes = _records(
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
            lines, schema={"customer": text, "order": text, "product": text}
        ).sort("customer", "order", "product"),
        categories=pl.DataFrame(categories, schema={"product": text, "category": text}).sort(
            "product", "category"
        ),
        names=pl.DataFrame(names, schema={"kind": text, "key": text, "name": text}),
        products=pl.DataFrame(
            attributes, schema={"product": text, "brand": text, "price": pl.Float64}
        ).sort("product"),
    )


# --- strategies: each returns candidate rows (customer, product, score), higher is better --------

Strategy = Callable[[GraphData, RecommendOptions, list[str]], pl.DataFrame]
CANDIDATES = {"customer": pl.String, "product": pl.String, "score": pl.Float64}


def _affinity(data: GraphData) -> pl.DataFrame:
    """(customer, product, w): the summed event weights of each pair."""
    return data.interactions.group_by("customer", "product").agg(w=pl.col("weight").sum())


def _top_per(frame: pl.DataFrame, group: str, score: str, n: int, tie: str) -> pl.DataFrame:
    """The ``n`` best rows of each ``group`` by ``score`` (ties by ``tie``, ascending)."""
    return (
        frame.sort([group, score, tie], descending=[False, True, False])
        .group_by(group, maintain_order=True)
        .head(n)
    )


def _score_by_neighbours(
    start: pl.DataFrame, neighbours: pl.DataFrame, weight: str
) -> pl.DataFrame:
    """Sum of start weight times similarity, from (customer, product, weight) and (product, other, sim)."""
    return (
        start.join(neighbours, on="product")
        .group_by("customer", "other")
        .agg(score=(pl.col(weight) * pl.col("sim")).sum())
        .rename({"other": "product"})
    )


def weighted(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """Item-to-item cosine similarity of event-weighted customer vectors."""
    affinity = _affinity(data)
    norms = affinity.group_by("product").agg(norm=(pl.col("w") ** 2).sum().sqrt())
    pairs = (
        affinity.join(affinity, on="customer", suffix="_b")
        .filter(pl.col("product") != pl.col("product_b"))
        .group_by("product", "product_b")
        .agg(dot=(pl.col("w") * pl.col("w_b")).sum())
        .join(norms, on="product")
        .join(norms.rename({"product": "product_b", "norm": "norm_b"}), on="product_b")
        .select(
            "product",
            other=pl.col("product_b"),
            sim=pl.col("dot") / (pl.col("norm") * pl.col("norm_b")),
        )
    )
    neighbours = _top_per(pairs, "product", "sim", options.neighbours, "other")
    start = affinity.filter(pl.col("customer").is_in(targets))
    return _score_by_neighbours(start, neighbours, "w")


def copurchase(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """How often products were bought in the same order as the customer's purchases."""
    lines = data.order_lines.select("order", "product").unique()
    pairs = (
        lines.join(lines, on="order", suffix="_b")
        .filter(pl.col("product") != pl.col("product_b"))
        .group_by("product", "product_b")
        .agg(sim=pl.len().cast(pl.Float64))
        .rename({"product_b": "other"})
    )
    neighbours = _top_per(pairs, "product", "sim", options.neighbours, "other")
    start = (
        data.purchased(options.purchase_type)
        .filter(pl.col("customer").is_in(targets))
        .with_columns(w=pl.lit(1.0))
    )
    return _score_by_neighbours(start, neighbours, "w")


def _customer_product_graph(data: GraphData) -> tuple[igraph.Graph, list[str], list[str]]:
    """The undirected weighted customer-product graph; vertices are customers then products."""
    affinity = _affinity(data).sort("customer", "product")
    customers = data.customers.get_column("customer").to_list()
    products = sorted(set(affinity.get_column("product").to_list()))
    # Customer and product keys share values (customer 5, product 5): one index each.
    customer_index = {c: i for i, c in enumerate(customers)}
    product_index = {p: len(customers) + i for i, p in enumerate(products)}
    edges = [
        (customer_index[c], product_index[p])
        for c, p in zip(
            affinity.get_column("customer"), affinity.get_column("product"), strict=True
        )
    ]
    import igraph  # only here: importing it (and what it draws with) costs half a second

    graph = igraph.Graph(n=len(customers) + len(products), edges=edges, directed=False)
    graph.es["weight"] = affinity.get_column("w").to_list()
    return graph, customers, products


def pagerank(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """Personalized PageRank from each customer (with history) over the customer-product graph."""
    graph, customers, products = _customer_product_graph(data)
    if not products:
        return pl.DataFrame(schema=CANDIDATES)
    index = {c: i for i, c in enumerate(customers)}
    product_vertices = range(len(customers), len(customers) + len(products))
    bought = data.purchased(options.purchase_type).group_by("customer").agg(pl.len())
    counts = dict(zip(bought.get_column("customer"), bought.get_column("len"), strict=True))
    rows: dict[str, list[Any]] = {"customer": [], "product": [], "score": []}
    for customer in targets:
        vertex = index.get(customer)
        if vertex is None or graph.degree(vertex) == 0:
            continue
        ranks = graph.personalized_pagerank(
            vertices=product_vertices, reset_vertices=[vertex], weights="weight", directed=False
        )
        keep = options.top_n + counts.get(customer, 0)
        best = heapq.nlargest(keep, zip(ranks, products, strict=True), key=lambda r: r[0])
        for score, product in best:
            rows["customer"].append(customer)
            rows["product"].append(product)
            rows["score"].append(score)
    return pl.DataFrame(rows, schema=CANDIDATES)


def _most_purchased(data: GraphData, options: RecommendOptions) -> int:
    """The most products one customer purchased: how deep a shared list must go to keep N."""
    counts = data.purchased(options.purchase_type).group_by("customer").len()
    return int(counts.select(pl.col("len").max().fill_null(0)).item())


def communities(data: GraphData, seed: int) -> pl.DataFrame:
    """(customer, community): Louvain communities of the customer-product graph."""
    graph, customers, _ = _customer_product_graph(data)
    random.seed(seed)  # igraph draws from Python's random module
    membership = graph.community_multilevel(weights="weight").membership
    return pl.DataFrame(
        {"customer": customers, "community": membership[: len(customers)]},
        schema={"customer": pl.String, "community": pl.Int64},
    )


def community(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """What the customer's community engages with most (summed event weights)."""
    groups = communities(data, options.seed)
    popular = (
        _affinity(data)
        .join(groups, on="customer")
        .group_by("community", "product")
        .agg(score=pl.col("w").sum())
    )
    keep = options.top_n + _most_purchased(data, options)
    popular = _top_per(popular, "community", "score", keep, "product")
    return (
        groups.filter(pl.col("customer").is_in(targets))
        .join(popular, on="community")
        .select("customer", "product", "score")
    )


def popular(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """The cold start: popular products of the customer's favourite categories, then overall.

    Popularity is the number of distinct customers who purchased a product (views break ties);
    a customer's favourite categories are the three with the most event weight. Scores are in
    [0, 2): category products score 1 + their popularity share, the others their share.
    """
    events = data.interactions
    buyers = data.purchased(options.purchase_type).group_by("product").agg(buyers=pl.len())
    viewers = events.group_by("product").agg(viewers=pl.col("customer").n_unique())
    popularity = (
        viewers.join(buyers, on="product", how="left")
        .with_columns(pl.col("buyers").fill_null(0))
        .with_columns(pop=(pl.col("buyers") + pl.col("viewers") / 1e6))
        .with_columns(pop=pl.col("pop") / pl.col("pop").max())
        .sort(["pop", "product"], descending=[True, False])
    )
    depth = options.top_n + _most_purchased(data, options)
    overall = popularity.head(depth).select("product", score=pl.col("pop"))
    favourite = _top_per(
        events.join(data.categories, on="product")
        .group_by("customer", "category")
        .agg(w=pl.col("weight").sum()),
        "customer",
        "w",
        3,
        "category",
    )
    per_category = _top_per(
        data.categories.join(popularity, on="product"), "category", "pop", depth, "product"
    )
    by_category = (
        favourite.filter(pl.col("customer").is_in(targets))
        .join(per_category, on="category")
        .group_by("customer", "product")
        .agg(score=1 + pl.col("pop").max())
    )
    everyone = pl.DataFrame({"customer": targets}, schema={"customer": pl.String}).join(
        overall, how="cross"
    )
    return pl.concat([by_category, everyone.select("customer", "product", "score")])


def node2vec(
    data: GraphData,
    options: RecommendOptions,
    targets: list[str],
    embeddings: Embeddings | None = None,
) -> pl.DataFrame:
    """The products nearest to the customer's node2vec vector (``embeddings``: those of
    ``data``, when already trained)."""
    from bulk360.apps.embeddings import embed, nearest_products

    depth = options.top_n + _most_purchased(data, options)
    return nearest_products(embeddings or embed(data, options), targets, depth)


STRATEGY_FUNCTIONS: dict[str, Strategy] = {
    "weighted": weighted,
    "copurchase": copurchase,
    "pagerank": pagerank,
    "community": community,
    "node2vec": node2vec,
    "popular": popular,
}


def _rank(
    strategy: str,
    model: pl.DataFrame,
    cold: pl.DataFrame,
    purchased: pl.DataFrame,
    top_n: int,
    new: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Top ``top_n`` per customer: the model's candidates first, then the cold start's; a
    customer's ``new`` products (:mod:`bulk360.apps.content`) take the last places."""
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


def compute(
    data: GraphData,
    options: RecommendOptions,
    strategy: str,
    targets: list[str],
    embeddings: Embeddings | None = None,
) -> pl.DataFrame:
    """Ranked lists (strategy, customer, rank, product, score, cold_start, reason) for
    ``targets`` (``embeddings``: the node2vec vectors of ``data``, when already trained). A
    reason is there only for new products (:mod:`bulk360.apps.reasons` gives the others)."""
    purchased = data.purchased(options.purchase_type)
    cold = popular(data, options, targets)
    new = new_products(data, options, targets)
    if strategy == "popular":
        model = cold
    elif strategy == "node2vec":
        model = node2vec(data, options, targets, embeddings)
    else:
        model = STRATEGY_FUNCTIONS[strategy](data, options, targets)
    return _rank(strategy, model, cold, purchased, options.top_n, new)


def _held_out(data: GraphData, options: RecommendOptions) -> tuple[GraphData, pl.DataFrame]:
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
    training, held = _held_out(data, options)
    if held.is_empty():
        return 0.0, 0
    lists = compute(training, options, strategy, held.get_column("customer").to_list())
    hits = lists.join(held, on=["customer", "product"]).height
    return hits / held.height, held.height


@dataclass
class RecommendRun:
    """What ``bulk360 recommend`` computed and stored."""

    rec_run_id: int
    etl_run_id: int | None
    customers: int
    rows: int
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    """strategy → hit_rate, evaluated customers, seconds."""
    communities: int = 0
    similar: int = 0
    """Rows of similar products stored (node2vec)."""
    embeddings: int = 0
    """Vectors written to the ``--export-embeddings`` file."""


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` as ``path``, written whole or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        frame.write_parquet(partial)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the embeddings to {path}: {exc.strerror or exc}") from None


def _write_communities(driver: Driver, database: str, data: GraphData, seed: int) -> int:
    # Customers without history sit alone in the graph: they get no community.
    engaged = data.interactions.select("customer").unique()
    groups = (
        communities(data, seed).join(engaged, on="customer").join(data.customers, on="customer")
    )
    rows = groups.select("element_id", "community").rows()
    for start in range(0, len(rows), 5000):
        driver.execute_query(
            "UNWIND $rows AS r MATCH (c) WHERE elementId(c) = r[0] SET c.community = r[1]",
            rows=rows[start : start + 5000],
            database_=database,
            bookmark_manager_=None,
        )
    return int(groups.get_column("community").n_unique())


def _store_similar(conn: Any, rec_run_id: int, similar: pl.DataFrame) -> None:
    with conn.cursor().copy(
        "COPY product_similarities (rec_run_id, product_key, rank, similar_key, score) FROM STDIN"
    ) as copy:
        for product, rank, other, score in similar.iter_rows():
            copy.write_row((rec_run_id, product, rank, other, score))


def recommend(
    settings: Settings,
    driver: Driver,
    options: RecommendOptions,
    export_embeddings: Path | None = None,
) -> RecommendRun:
    """Compute every strategy's lists for all customers, evaluate them, and store them; with
    node2vec, each product's similar products too (and the vectors in ``export_embeddings``)."""
    options.check()
    with connect_control(settings) as conn:
        row = conn.execute(
            "SELECT max(run_id) FROM etl_run_logs WHERE status = 'succeeded'"
        ).fetchone()
        etl_run_id = row[0] if row else None
        parameters = {
            "weights": dict(options.weights),
            "seed": options.seed,
            "labels": [options.customer_label, options.product_label],
            "eval_customers": options.eval_customers,
        }
        rec_run_id = conn.execute(
            "INSERT INTO recommendation_runs (etl_run_id, status, strategies, top_n, parameters)"
            " VALUES (%s, 'running', %s, %s, %s) RETURNING rec_run_id",
            [etl_run_id, list(options.strategies), options.top_n, Jsonb(parameters)],
        ).fetchone()[0]  # type: ignore[index]
    try:
        data = read_graph(driver, settings.neo4j_database, options)
        customers = data.customers.get_column("customer").to_list()
        result = RecommendRun(rec_run_id, etl_run_id, len(customers), 0)
        vectors, training = None, 0.0
        if "node2vec" in options.strategies or export_embeddings is not None:
            from bulk360.apps.embeddings import embed

            started = time.perf_counter()
            vectors = embed(data, options)
            training = time.perf_counter() - started
        with connect_control(settings) as conn, conn.transaction():
            for strategy in options.strategies:
                started = time.perf_counter()
                lists = compute(data, options, strategy, customers, vectors)
                rate, evaluated = hit_rate(data, options, strategy)
                result.quality[strategy] = {
                    "hit_rate": rate,
                    "evaluated": evaluated,
                    "seconds": round(
                        time.perf_counter() - started + (training if strategy == "node2vec" else 0),
                        2,
                    ),
                }
                result.rows += lists.height
                explained = explain(data, options, lists)
                with conn.cursor().copy(
                    "COPY recommendations (rec_run_id, strategy, customer_key, rank, product_key,"
                    " score, cold_start, reason) FROM STDIN"
                ) as copy:
                    for row in explained.iter_rows():
                        copy.write_row((rec_run_id, *row))
            if vectors is not None:
                from bulk360.apps.embeddings import similar_products

                if "node2vec" in options.strategies:
                    similar = similar_products(vectors, options.similar)
                    _store_similar(conn, rec_run_id, similar)
                    result.similar = similar.height
                if export_embeddings is not None:
                    names = {
                        "c": options.customer_label,
                        "p": options.product_label,
                        "k": options.category_label,
                    }
                    frame = vectors.frame(names)
                    _write_parquet(frame, export_embeddings)
                    result.embeddings = frame.height
            if "community" in options.strategies and options.write_communities:
                result.communities = _write_communities(
                    driver, settings.neo4j_database, data, options.seed
                )
            conn.execute(
                "UPDATE recommendation_runs SET status = 'succeeded', finished_at = now(),"
                " customers = %s, quality = %s WHERE rec_run_id = %s",
                [result.customers, Jsonb(result.quality), rec_run_id],
            )
            notify(conn, "recommendations")
        return result
    except BaseException as exc:
        with connect_control(settings) as conn:
            conn.execute(
                "UPDATE recommendation_runs SET status = 'failed', finished_at = now(),"
                " error_text = %s WHERE rec_run_id = %s",
                [one_line(exc), rec_run_id],
            )
        raise
