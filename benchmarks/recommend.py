"""The recommendation strategies against their peers, on the graph Neo4j holds now.

``python -m benchmarks.recommend`` (after ``make demo SAMPLE=ecommerce``) runs
``recommend evaluate`` over every strategy and baseline (default cut, seed 42), then times
``recommend`` for the default strategies and personalized PageRank alone, batched against one
igraph call per customer (and checks that their lists are the same). It writes
``benchmarks/results/recommend.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bulk360.apps.recommend import recommend
from bulk360.apps.recommend.offline import BASELINES, evaluate
from bulk360.apps.recommend.read import read_graph
from bulk360.apps.recommend.scoring import pagerank
from bulk360.apps.strategies import STRATEGIES, RecommendOptions
from bulk360.graph import connect_graph
from bulk360.settings import load_settings

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default=".env")
    parser.add_argument("--output", type=Path, default=RESULTS / "recommend.json")
    args = parser.parse_args()
    settings = load_settings(Path(args.env))
    options = RecommendOptions()
    with connect_graph(settings) as driver:
        data = read_graph(driver, settings.neo4j_database, options)
        started = time.perf_counter()
        figures = evaluate(data, options, [*STRATEGIES, *BASELINES])
        evaluation = time.perf_counter() - started
        started = time.perf_counter()
        run = recommend(settings, driver, options)
        default_run = time.perf_counter() - started
    from tests.unit.apps.test_pagerank import igraph_lists

    targets = data.customers.get_column("customer").to_list()
    started = time.perf_counter()
    batched = pagerank(data, options, targets)
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    per_customer = igraph_lists(data, options, targets)
    igraph_seconds = time.perf_counter() - started
    lists = {
        c: g.get_column("product").to_list()
        for (c,), g in batched.group_by("customer", maintain_order=True)
    }
    result = {
        "evaluate": figures,
        "evaluate_seconds": round(evaluation, 1),
        "recommend_default_strategies_seconds": round(default_run, 1),
        "recommend_quality": run.quality,
        "pagerank": {
            "batched_seconds": round(batched_seconds, 2),
            "igraph_per_customer_seconds": round(igraph_seconds, 2),
            "lists": len(per_customer),
            "lists_differing": sum(lists.get(c) != v for c, v in per_customer.items()),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "evaluate"}, indent=2))
    for name, row in sorted(
        figures["methods"].items(), key=lambda kv: -kv[1]["metrics"]["ndcg@10"]["value"]
    ):
        print(name, {m: f["value"] for m, f in row["metrics"].items()})


if __name__ == "__main__":
    main()
