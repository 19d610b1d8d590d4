"""node2vec embeddings of the customer-product-category graph, and what they answer.

The graph: customers and products joined by their summed event weights (the strategies'
affinity), products joined to their categories (weight 1). Walks are node2vec's second-order
random walks (Grover & Leskovec, 2016): from ``t`` to ``v``, the next vertex ``x`` is drawn by
edge weight times ``1/p`` when ``x`` is ``t`` (going back), 1 when ``x`` is a neighbour of ``t``,
``1/q`` otherwise (going outward), sampled by rejection from the weighted first-order choice. The
walks are the sentences of gensim's skip-gram Word2Vec, one worker and a stable hash, so the
vectors are the same for the same data and ``seed`` in any process.

Each vertex is a token ``c:<key>``, ``p:<key>`` or ``k:<category>``; :func:`embed` gives one
vector per node with its label and key (what ``--export-embeddings`` writes), the ``node2vec``
strategy recommends the products nearest (cosine) to the customer's vector, and
:func:`similar_products` the products nearest to each product.
"""

from __future__ import annotations

import bisect
import random
import zlib
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from bulk360.apps.recommend.graph import GraphData
    from bulk360.apps.strategies import RecommendOptions

__all__ = ["Embeddings", "embed", "nearest_products", "similar_products"]


def _stable_hash(text: str) -> int:
    """Word2Vec's seed of each token's first vector: the same in every process (``hash`` of a
    str is salted per process)."""
    return zlib.crc32(text.encode())


@dataclass(frozen=True)
class Embeddings:
    """One vector per node: ``kinds[i]`` (``c``, ``p`` or ``k``) and ``keys[i]`` own row ``i``."""

    kinds: list[str]
    keys: list[str]
    vectors: np.ndarray

    def of(self, kind: str) -> tuple[list[str], np.ndarray]:
        """The keys of one kind of node and their unit vectors (rows in that order)."""
        rows = [i for i, k in enumerate(self.kinds) if k == kind]
        vectors = self.vectors[rows]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return [self.keys[i] for i in rows], vectors / np.where(norms == 0, 1, norms)

    def frame(self, labels: dict[str, str]) -> pl.DataFrame:
        """(label, key, vector) per node; ``labels`` names each kind."""
        return pl.DataFrame(
            {
                "label": [labels[k] for k in self.kinds],
                "key": self.keys,
                "vector": self.vectors.astype(np.float32),
            },
            schema={
                "label": pl.String,
                "key": pl.String,
                "vector": pl.Array(pl.Float32, self.vectors.shape[1]),
            },
        )


class _Walker:
    """node2vec walks over an undirected weighted graph given as adjacency lists."""

    def __init__(self, edges: list[tuple[str, str, float]], p: float, q: float, rng: random.Random):
        adjacency: dict[str, dict[str, float]] = {}
        for a, b, w in edges:
            adjacency.setdefault(a, {})[b] = adjacency.get(a, {}).get(b, 0.0) + w
            adjacency.setdefault(b, {})[a] = adjacency.get(b, {}).get(a, 0.0) + w
        self.vertices = sorted(adjacency)
        self.neighbours = {v: sorted(adjacency[v]) for v in self.vertices}
        self.sets = {v: set(n) for v, n in self.neighbours.items()}
        self.cumulative = {
            v: list(accumulate(adjacency[v][n] for n in self.neighbours[v])) for v in self.vertices
        }
        self.back, self.out = 1 / p, 1 / q
        self.ceiling = max(self.back, 1.0, self.out)
        self.rng = rng

    def _step(self, vertex: str) -> str:
        weights = self.cumulative[vertex]
        return self.neighbours[vertex][bisect.bisect(weights, self.rng.random() * weights[-1])]

    def walk(self, start: str, length: int) -> list[str]:
        path = [start, self._step(start)]
        while len(path) < length:
            previous, vertex = path[-2], path[-1]
            while True:  # rejection: at most a few draws, whatever the degree
                candidate = self._step(vertex)
                if candidate == previous:
                    bias = self.back
                elif candidate in self.sets[previous]:
                    bias = 1.0
                else:
                    bias = self.out
                if self.rng.random() * self.ceiling < bias:
                    break
            path.append(candidate)
        return path

    def walks(self, per_vertex: int, length: int) -> list[list[str]]:
        found = []
        for _ in range(per_vertex):
            order = list(self.vertices)
            self.rng.shuffle(order)
            found += [self.walk(v, length) for v in order]
        return found


def _edges(data: GraphData) -> list[tuple[str, str, float]]:
    affinity = data.interactions.group_by("customer", "product").agg(w=pl.col("weight").sum())
    edges = [
        (f"c:{c}", f"p:{p}", float(w))
        for c, p, w in affinity.sort("customer", "product").iter_rows()
    ]
    engaged = set(affinity.get_column("product"))
    edges += [(f"p:{p}", f"k:{k}", 1.0) for p, k in data.categories.iter_rows() if p in engaged]
    return edges


def embed(data: GraphData, options: RecommendOptions) -> Embeddings:
    """A vector per customer, product and category that has at least one edge."""
    from gensim.models import Word2Vec  # only here: importing gensim takes a second

    edges = _edges(data)
    dimensions = options.dimensions
    if not edges:
        return Embeddings([], [], np.zeros((0, dimensions)))
    walker = _Walker(edges, options.return_p, options.inout_q, random.Random(options.seed))
    sentences = walker.walks(options.walks_per_node, options.walk_length)
    model = Word2Vec(
        sentences,
        vector_size=dimensions,
        window=5,
        min_count=1,
        sg=1,
        negative=5,
        epochs=3,
        workers=1,
        seed=options.seed,
        hashfxn=_stable_hash,
    )
    tokens = walker.vertices
    return Embeddings(
        kinds=[t.split(":", 1)[0] for t in tokens],
        keys=[t.split(":", 1)[1] for t in tokens],
        vectors=np.array([model.wv[t] for t in tokens], dtype=np.float64),
    )


def nearest_products(
    embeddings: Embeddings, targets: list[str], depth: int, affinity: pl.DataFrame | None = None
) -> pl.DataFrame:
    """(customer, product, score): the ``depth`` products nearest to each target customer; the
    customer's vector is their node's, or with ``affinity`` (customer, product, w) the mean of
    their products' vectors weighted by ``w``."""
    customers, customer_vectors = embeddings.of("c")
    products, product_vectors = embeddings.of("p")
    if affinity is not None:
        customers, customer_vectors = _mean_vectors(affinity, products, product_vectors)
    index = {c: i for i, c in enumerate(customers)}
    rows: dict[str, list[object]] = {"customer": [], "product": [], "score": []}
    known = [c for c in targets if c in index]
    if not known or not products:
        return pl.DataFrame(
            rows, schema={"customer": pl.String, "product": pl.String, "score": pl.Float64}
        )
    scores = customer_vectors[[index[c] for c in known]] @ product_vectors.T
    keep = min(depth, len(products))
    best = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
    for row, customer in enumerate(known):
        for column in best[row]:
            rows["customer"].append(customer)
            rows["product"].append(products[column])
            rows["score"].append(float(scores[row, column]))
    return pl.DataFrame(
        rows, schema={"customer": pl.String, "product": pl.String, "score": pl.Float64}
    )


def _mean_vectors(
    affinity: pl.DataFrame, products: list[str], vectors: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Each customer's unit vector: their products' vectors weighted by their event weights."""
    from bulk360.apps.recommend.graph import keyed_matrix

    known = affinity.filter(pl.col("product").is_in(products))
    customers = sorted(set(known.get_column("customer")))
    weights = keyed_matrix(known, "customer", customers, "product", products)
    mean = np.asarray(weights @ vectors)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    return customers, mean / np.where(norms == 0, 1, norms)


def similar_products(embeddings: Embeddings, per_product: int) -> pl.DataFrame:
    """(product, rank, similar, score): each product's nearest other products by cosine."""
    products, vectors = embeddings.of("p")
    schema = {"product": pl.String, "rank": pl.Int32, "similar": pl.String, "score": pl.Float64}
    if len(products) < 2:
        return pl.DataFrame(schema=schema)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    keep = min(per_product, len(products) - 1)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
    rows = [
        (products[i], rank, products[j], float(scores[i, j]))
        for i in range(len(products))
        for rank, j in enumerate(best[i], start=1)
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")
