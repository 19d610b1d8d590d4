"""The pagerank strategy's batched solve against igraph's per-customer personalized PageRank."""

from __future__ import annotations

import heapq
import random

import igraph
import polars as pl
import pytest

from bulk360.apps.recommend import scoring
from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.recommend.scoring import DAMPING, pagerank
from bulk360.apps.strategies import RecommendOptions


def shop(seed: int, customers: int = 120, products: int = 60) -> GraphData:
    rng = random.Random(seed)
    rows = []
    for c in range(customers - 5):  # the last five customers have no events
        for _ in range(rng.randint(1, 12)):
            p = min(int(rng.paretovariate(1.2)), products) - 1
            kind = rng.choice(["VIEWED", "VIEWED", "ADDED_TO_CART", "PURCHASED"])
            rows.append((str(c), str(p), kind, "2026-01-01"))
    weights = pl.DataFrame(
        {"type": ["VIEWED", "ADDED_TO_CART", "PURCHASED"], "weight": [1.0, 3.0, 5.0]}
    )
    interactions = pl.DataFrame(rows, schema=["customer", "product", "type", "at"], orient="row")
    return GraphData(
        customers=pl.DataFrame({"customer": [str(c) for c in range(customers)], "element_id": ""}),
        interactions=interactions.join(weights, on="type"),
        order_lines=pl.DataFrame(
            schema={
                "customer": pl.String,
                "order": pl.String,
                "product": pl.String,
                "at": pl.String,
            }
        ),
        categories=pl.DataFrame(schema={"product": pl.String, "category": pl.String}),
    )


def igraph_lists(
    data: GraphData, options: RecommendOptions, targets: list[str]
) -> dict[str, list[str]]:
    """What the strategy computed before: one igraph call per customer."""
    affinity = data.interactions.group_by("customer", "product").agg(w=pl.col("weight").sum())
    customers = data.customers.get_column("customer").to_list()
    products = sorted(set(affinity.get_column("product")))
    vertex = {c: i for i, c in enumerate(customers)}  # customer 5 and product 5: two vertices
    product_vertex = {p: len(customers) + i for i, p in enumerate(products)}
    pairs = zip(affinity["customer"], affinity["product"], strict=True)
    graph = igraph.Graph(
        n=len(customers) + len(products), edges=[(vertex[c], product_vertex[p]) for c, p in pairs]
    )
    graph.es["weight"] = affinity.get_column("w").to_list()
    bought = data.purchased(options.purchase_type).group_by("customer").len()
    counts = dict(zip(bought["customer"], bought["len"], strict=True))
    lists = {}
    for customer in targets:
        if graph.degree(vertex[customer]) == 0:
            continue
        ranks = graph.personalized_pagerank(
            vertices=range(len(customers), len(customers) + len(products)),
            reset_vertices=[vertex[customer]],
            weights="weight",
            damping=DAMPING,
        )
        keep = options.top_n + counts.get(customer, 0)
        best = heapq.nlargest(keep, zip(ranks, products, strict=True), key=lambda r: r[0])
        lists[customer] = [p for _, p in best]
    return lists


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_the_batched_solve_gives_igraphs_lists_and_scores(
    seed: int, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of solving (the products' dense system; the whole graph, sparse, in batches)."""
    if path == "sparse":
        monkeypatch.setattr(scoring, "DENSE_PRODUCTS", 0)
        monkeypatch.setattr(scoring, "BATCH", 7)
    data = shop(seed)
    options = RecommendOptions(top_n=10)
    targets = data.customers.get_column("customer").to_list()
    ours = pagerank(data, options, targets)
    expected = igraph_lists(data, options, targets)
    got = {
        c: g.get_column("product").to_list()
        for (c,), g in ours.group_by("customer", maintain_order=True)
    }
    assert set(got) == set(expected) and len(got) == len(targets) - 5  # no list without history
    differing = [c for c in expected if got[c] != expected[c]]
    assert not differing, (differing[:3], [(got[c], expected[c]) for c in differing[:1]])
    assert ours.get_column("score").min() > 0
