"""The strategies: each scores (customer, product) candidates from the edge lists."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from bulk360.apps.recommend.graph import GraphData, keyed_matrix
from bulk360.apps.strategies import RecommendOptions

if TYPE_CHECKING:
    import igraph

    from bulk360.apps.recommend.embeddings import Embeddings

__all__ = [
    "CANDIDATES",
    "STRATEGY_FUNCTIONS",
    "Strategy",
    "communities",
    "community",
    "copurchase",
    "most_purchased",
    "node2vec",
    "pagerank",
    "popular",
    "summed_weights",
    "weighted",
]


Strategy = Callable[[GraphData, RecommendOptions, list[str]], pl.DataFrame]


CANDIDATES = {"customer": pl.String, "product": pl.String, "score": pl.Float64}


def summed_weights(data: GraphData) -> pl.DataFrame:
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
    affinity = summed_weights(data)
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
    affinity = summed_weights(data).sort("customer", "product")
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


DAMPING = 0.85
"""PageRank's damping factor (igraph's default): the walk goes on with this probability."""

DENSE_PRODUCTS = 12_000
"""Up to this many products, the products' system is solved as one dense inverse."""

BATCH = 256
"""Beyond it, customers whose ranks are solved at once over the whole sparse graph."""


def _product_ranks(
    b: Any, customer_strength: np.ndarray, product_strength: np.ndarray, columns: list[int]
) -> np.ndarray:
    """Personalized PageRank of every product (rows) for walks restarting at each customer of
    ``columns``; ``b`` is the products-by-customers matrix of edge weights.

    A walk restarting at customer ``s`` alternates customers and products, so the product ranks
    solve ``(I - d²·B·Sc⁻¹·Bᵀ·Sp⁻¹) r = d(1 - d)·B·Sc⁻¹·e_s`` (``S`` the strengths, ``d`` the
    damping), a system as large as the catalogue and the same for every customer: inverted once,
    densely, its solutions for all customers are one product with a sparse matrix. A larger
    catalogue is solved over the whole sparse graph, factorised once (SuperLU), in batches.
    """
    from scipy.sparse import bmat, csc_matrix, diags, identity
    from scipy.sparse.linalg import splu

    def inverse(strength: np.ndarray) -> Any:
        return diags(np.divide(1.0, strength, out=np.zeros_like(strength), where=strength > 0))

    to_products = b @ inverse(customer_strength)  # customer → product transitions
    to_customers = b.T @ inverse(product_strength)
    if b.shape[0] <= DENSE_PRODUCTS:
        system = np.identity(b.shape[0]) - DAMPING**2 * (to_products @ to_customers).toarray()
        restart = to_products[:, columns] * (DAMPING * (1 - DAMPING))
        return np.asarray(restart.T @ np.linalg.inv(system).T).T
    graph = bmat([[None, to_customers], [to_products, None]], format="csc")
    solver = splu(csc_matrix(identity(graph.shape[0]) - DAMPING * graph))
    customers = b.shape[1]
    ranks = []
    for start in range(0, len(columns), BATCH):
        batch = columns[start : start + BATCH]
        e = np.zeros((graph.shape[0], len(batch)))
        e[batch, np.arange(len(batch))] = 1 - DAMPING
        ranks.append(solver.solve(e)[customers:])
    return np.hstack(ranks) if ranks else np.zeros((b.shape[0], 0))


def pagerank(data: GraphData, options: RecommendOptions, targets: list[str]) -> pl.DataFrame:
    """Personalized PageRank from each customer (with history) over the customer-product graph
    (:func:`_product_ranks`): the values igraph's per-customer ``personalized_pagerank`` gives,
    to its own tolerance, for all customers at once."""
    weights = summed_weights(data)
    customers = data.customers.get_column("customer").to_list()
    products = sorted(set(weights.get_column("product").to_list()))
    if not products:
        return pl.DataFrame(schema=CANDIDATES)
    index = {c: i for i, c in enumerate(customers)}
    b = keyed_matrix(weights, "product", products, "customer", customers)
    customer_strength = np.asarray(b.sum(axis=0)).ravel()
    product_strength = np.asarray(b.sum(axis=1)).ravel()
    engaged = [c for c in targets if c in index and customer_strength[index[c]] > 0]
    ranks = _product_ranks(b, customer_strength, product_strength, [index[c] for c in engaged]).T
    bought = data.purchased(options.purchase_type).group_by("customer").agg(pl.len())
    counts = dict(zip(bought.get_column("customer"), bought.get_column("len"), strict=True))
    found: dict[str, list[Any]] = {"customer": [], "product": [], "score": []}
    for customer, scores in zip(engaged, ranks, strict=True):
        best = np.argsort(-scores, kind="stable")[: options.top_n + counts.get(customer, 0)]
        found["customer"] += [customer] * len(best)
        found["product"] += [products[i] for i in best]
        found["score"] += scores[best].tolist()
    return pl.DataFrame(found, schema=CANDIDATES)


def most_purchased(data: GraphData, options: RecommendOptions) -> int:
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
        summed_weights(data)
        .join(groups, on="customer")
        .group_by("community", "product")
        .agg(score=pl.col("w").sum())
    )
    keep = options.top_n + most_purchased(data, options)
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
    depth = options.top_n + most_purchased(data, options)
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
    from bulk360.apps.recommend.embeddings import embed, nearest_products

    depth = options.top_n + most_purchased(data, options)
    weights = summed_weights(data) if options.customer_vector == "products" else None
    return nearest_products(embeddings or embed(data, options), targets, depth, weights)


STRATEGY_FUNCTIONS: dict[str, Strategy] = {
    "weighted": weighted,
    "copurchase": copurchase,
    "pagerank": pagerank,
    "community": community,
    "node2vec": node2vec,
    "popular": popular,
}
