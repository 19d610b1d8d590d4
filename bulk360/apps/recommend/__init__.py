"""``bulk360 recommend``: top-N products per customer from the graph, by several strategies.

The graph is read once over Bolt as edge lists (customer-product events, order lines, product
categories) into Polars. The strategies then score (customer, product) candidates:

- ``weighted``: event-weighted item-to-item collaborative filtering (cosine similarity of the
  products' weighted customer vectors; ``view`` < ``add_to_cart`` < ``purchase`` by default);
- ``copurchase``: products bought in the same orders as the customer's purchases;
- ``pagerank``: personalized PageRank from the customer over the weighted customer-product graph
  (one linear solve for all customers, SciPy); only when asked for (below popularity on
  MovieLens);
- ``community``: what the customer's community (Louvain communities of the same graph, igraph;
  stored as the ``community`` property of the customer nodes) engages with most;
- ``node2vec``: the products nearest to the customer's vector among node2vec embeddings of the
  customer-product-category graph (:mod:`bulk360.apps.recommend.embeddings`; gensim's Word2Vec);
  only when asked for: it is not among the default strategies;
- ``popular``: the cold start — popular products of the customer's favourite categories, then
  popular products overall.

Products the customer already purchased are never recommended. Each stored row carries a short
reason (:mod:`bulk360.apps.recommend.reasons`). Every strategy's list is filled
up to N from the cold start (those rows are flagged), so a customer without history gets the
popular products. The lists go to the control database's ``recommendations`` table with the run
id and the strategy; the offline quality figure is the hit rate of each evaluated customer's last
purchase, held out of the data the strategy sees.

The package holds one file per job: :mod:`.read` (the graph into edge lists, :mod:`.graph`),
:mod:`.scoring` (the strategies), :mod:`.rank` (top N, cold start, reasons: :mod:`.reasons`,
:mod:`.content`), :mod:`.evaluate` (the hit rate), :mod:`.offline` (``recommend evaluate``:
the split by time, the field's metrics, the peer baselines), :mod:`.store` (Parquet, the control database,
the graph's communities); node2vec's vectors in :mod:`.embeddings`. Here: the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from neo4j import Driver
from psycopg.types.json import Jsonb

from bulk360.apps.recommend.evaluate import hit_rate
from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.recommend.rank import cannot_compute, compute
from bulk360.apps.recommend.read import read_graph
from bulk360.apps.recommend.reasons import explain
from bulk360.apps.recommend.store import store_similar, write_communities, write_parquet
from bulk360.apps.strategies import DEFAULT_WEIGHTS, STRATEGIES, RecommendOptions
from bulk360.control import connect_control
from bulk360.control.notify import notify
from bulk360.errors import ConfigError, one_line
from bulk360.settings import Settings

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
    skipped: dict[str, str] = field(default_factory=dict)
    """Strategies that cannot run on the graph, with the reason (not named by the user)."""


def recommend(
    settings: Settings,
    driver: Driver,
    options: RecommendOptions,
    export_embeddings: Path | None = None,
    explicit: bool = False,
) -> RecommendRun:
    """Compute every strategy's lists for all customers, evaluate them, and store them; with
    node2vec, each product's similar products too (and the vectors in ``export_embeddings``).

    A strategy that cannot run on the graph (copurchase without orders) fails the run when
    ``explicit`` (the user named it), and is otherwise skipped and named in the result."""
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
        result.skipped = {s: why for s in options.strategies if (why := cannot_compute(s, data))}
        if result.skipped and explicit:
            raise ConfigError(next(iter(result.skipped.values())))
        strategies = [s for s in options.strategies if s not in result.skipped]
        vectors, training = None, 0.0
        if "node2vec" in options.strategies or export_embeddings is not None:
            from bulk360.apps.recommend.embeddings import embed

            started = time.perf_counter()
            vectors = embed(data, options)
            training = time.perf_counter() - started
        with connect_control(settings) as conn, conn.transaction():
            for strategy in strategies:
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
                from bulk360.apps.recommend.embeddings import similar_products

                if "node2vec" in options.strategies:
                    similar = similar_products(vectors, options.similar)
                    store_similar(conn, rec_run_id, similar)
                    result.similar = similar.height
                if export_embeddings is not None:
                    names = {
                        "c": options.customer_label,
                        "p": options.product_label,
                        "k": options.category_label,
                    }
                    frame = vectors.frame(names)
                    write_parquet(frame, export_embeddings)
                    result.embeddings = frame.height
            if "community" in options.strategies and options.write_communities:
                result.communities = write_communities(
                    driver, settings.neo4j_database, data, options.seed
                )
            conn.execute(
                "UPDATE recommendation_runs SET status = 'succeeded', finished_at = now(),"
                " strategies = %s, customers = %s, quality = %s WHERE rec_run_id = %s",
                [strategies, result.customers, Jsonb(result.quality), rec_run_id],
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
