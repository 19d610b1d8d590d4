"""node2vec embeddings on a generated shop: deterministic for a seed in any process, and they
find the structure the data has (customers who shop in one category)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from bulk360.apps.recommend import GraphData, compute
from bulk360.apps.recommend.embeddings import embed, nearest_products, similar_products
from bulk360.apps.strategies import RecommendOptions

CATEGORIES = 4
PRODUCTS_PER_CATEGORY = 12
CUSTOMERS = 120


def shop(seed: int = 7) -> GraphData:
    """Each customer views and buys products of one category (a few of another, by chance)."""
    rng = random.Random(seed)
    rows = []
    for c in range(CUSTOMERS):
        home = c % CATEGORIES
        for n in range(8):
            category = home if rng.random() < 0.9 else rng.randrange(CATEGORIES)
            product = category * PRODUCTS_PER_CATEGORY + rng.randrange(PRODUCTS_PER_CATEGORY)
            kind = "PURCHASED" if n % 3 == 0 else "VIEWED"
            rows.append((str(c), str(product), kind, f"2026-01-{n + 1:02d}"))
    weights = pl.DataFrame({"type": ["VIEWED", "PURCHASED"], "weight": [1.0, 5.0]})
    text = pl.String
    interactions = pl.DataFrame(
        rows, schema={"customer": text, "product": text, "type": text, "at": text}, orient="row"
    ).join(weights, on="type")
    products = CATEGORIES * PRODUCTS_PER_CATEGORY
    return GraphData(
        customers=pl.DataFrame(
            {"customer": [str(c) for c in range(CUSTOMERS)], "element_id": ["x"] * CUSTOMERS}
        ),
        interactions=interactions,
        order_lines=pl.DataFrame(schema={"customer": text, "order": text, "product": text}),
        categories=pl.DataFrame(
            {
                "product": [str(p) for p in range(products)],
                "category": [f"k{p // PRODUCTS_PER_CATEGORY}" for p in range(products)],
            }
        ),
    )


OPTIONS = RecommendOptions(dimensions=16, walks_per_node=4, walk_length=12, seed=3)


def test_the_same_seed_gives_the_same_vectors_and_another_seed_others() -> None:
    data = shop()
    first, again = embed(data, OPTIONS), embed(data, OPTIONS)
    assert first.keys == again.keys and np.array_equal(first.vectors, again.vectors)
    other = embed(data, RecommendOptions(dimensions=16, walks_per_node=4, walk_length=12, seed=4))
    assert not np.allclose(first.vectors, other.vectors)
    assert sorted(set(first.kinds)) == ["c", "k", "p"]
    assert first.vectors.shape == (CUSTOMERS + 48 + CATEGORIES, 16)


def test_vectors_are_the_same_in_another_process(tmp_path: Path) -> None:
    """Python salts str hashes per process; the vectors must not depend on it."""
    script = (
        "import sys, numpy as np; sys.path.insert(0, '.');"
        "from tests.unit.apps.test_embeddings import shop, OPTIONS;"
        "from bulk360.apps.recommend.embeddings import embed;"
        f"np.save({str(tmp_path / 'v.npy')!r}, embed(shop(), OPTIONS).vectors)"
    )
    for salt in ("1", "2"):
        subprocess.run(
            [sys.executable, "-c", script],
            check=True,
            env={**os.environ, "PYTHONHASHSEED": salt},
            cwd=Path(__file__).parents[3],
        )
        assert np.array_equal(np.load(tmp_path / "v.npy"), embed(shop(), OPTIONS).vectors)


def test_similar_products_share_the_category_far_more_often_than_chance() -> None:
    similar = similar_products(embed(shop(), OPTIONS), 5)
    category = pl.col("product").cast(pl.Int64) // PRODUCTS_PER_CATEGORY
    other = pl.col("similar").cast(pl.Int64) // PRODUCTS_PER_CATEGORY
    same = similar.select((category == other).mean()).item()
    # Chance: 11 of the 47 other products share a category (0.23).
    assert same > 0.8, same
    assert (
        similar.height == 48 * 5
        and similar.filter(pl.col("product") == pl.col("similar")).is_empty()
    )


def test_node2vec_lists_come_from_the_customers_category_and_skip_purchases() -> None:
    data = shop()
    lists = compute(data, OPTIONS, "node2vec", [str(c) for c in range(CUSTOMERS)])
    assert lists.height == CUSTOMERS * OPTIONS.top_n
    purchased = data.purchased("PURCHASED")
    assert lists.join(purchased, on=["customer", "product"]).is_empty()
    home = (pl.col("customer").cast(pl.Int64) % CATEGORIES) == (
        pl.col("product").cast(pl.Int64) // PRODUCTS_PER_CATEGORY
    )
    top = lists.filter(pl.col("rank") <= 3)
    assert top.select(home.mean()).item() > 0.8
    assert not lists.get_column("cold_start").any()


def test_nearest_products_of_an_unknown_customer_is_empty() -> None:
    found = nearest_products(embed(shop(), OPTIONS), ["nobody"], 5)
    assert found.is_empty() and found.columns == ["customer", "product", "score"]
