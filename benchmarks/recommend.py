"""The recommendation strategies against their peers, on the graph Neo4j holds now.

``python -m benchmarks.recommend`` (after ``make demo SAMPLE=ecommerce`` and
``make demo SAMPLE=movielens``: the second build holds both samples, whose labels differ) runs
``recommend evaluate`` over every strategy and baseline on each dataset (default cut, seed 42)
and checks the targets on each: the best graph strategy against implicit's ALS (ratio, and
whether the intervals overlap) and every default strategy against the popularity cold start.
On the shop it then times ``recommend`` for the default strategies, and personalized PageRank
alone, batched against one igraph call per customer (and checks that their lists are the same).
It writes ``benchmarks/results/recommend.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bulk360.apps.recommend import recommend
from bulk360.apps.recommend.offline import BASELINES, evaluate
from bulk360.apps.recommend.read import read_graph
from bulk360.apps.recommend.scoring import pagerank
from bulk360.apps.strategies import DEFAULT_STRATEGIES, STRATEGIES, RecommendOptions, read_model
from bulk360.graph import connect_graph
from bulk360.settings import load_settings

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "shop": RecommendOptions(),
    "movielens": RecommendOptions(
        **read_model(ROOT / "sql" / "samples" / "movielens" / "recommend.toml")
    ),
}


def targets(figures: dict[str, Any]) -> dict[str, Any]:
    """The issue's two targets on one dataset's evaluation."""
    ndcg = {m: row["metrics"]["ndcg@10"] for m, row in figures["methods"].items()}
    graph = [m for m in ndcg if m in STRATEGIES and m != "popular"]
    best = max(graph, key=lambda m: ndcg[m]["value"])
    als = ndcg["als"]
    return {
        "best_graph_strategy": best,
        "best_vs_als": round(ndcg[best]["value"] / als["value"], 3),
        "intervals_overlap": ndcg[best]["low"] <= als["high"],
        "below_popular": sorted(m for m in graph if ndcg[m]["value"] < ndcg["popular"]["value"]),
        "defaults_below_popular": sorted(
            m
            for m in DEFAULT_STRATEGIES
            if m in ndcg and ndcg[m]["value"] < ndcg["popular"]["value"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default=".env")
    parser.add_argument("--output", type=Path, default=RESULTS / "recommend.json")
    args = parser.parse_args()
    settings = load_settings(Path(args.env))
    result: dict[str, Any] = {"datasets": {}}
    with connect_graph(settings) as driver:
        for name, options in DATASETS.items():
            data = read_graph(driver, settings.neo4j_database, options)
            started = time.perf_counter()
            figures = evaluate(data, options, [*STRATEGIES, *BASELINES])
            result["datasets"][name] = {
                "evaluate": figures,
                "evaluate_seconds": round(time.perf_counter() - started, 1),
                "targets": targets(figures),
            }
        options = DATASETS["shop"]
        data = read_graph(driver, settings.neo4j_database, options)
        started = time.perf_counter()
        run = recommend(settings, driver, options)
        result["recommend_default_strategies_seconds"] = round(time.perf_counter() - started, 1)
        result["recommend_quality"] = run.quality
    from tests.unit.apps.test_pagerank import igraph_lists

    customers = data.customers.get_column("customer").to_list()
    started = time.perf_counter()
    batched = pagerank(data, options, customers)
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    per_customer = igraph_lists(data, options, customers)
    igraph_seconds = time.perf_counter() - started
    lists = {
        c: g.get_column("product").to_list()
        for (c,), g in batched.group_by("customer", maintain_order=True)
    }
    result["pagerank"] = {
        "batched_seconds": round(batched_seconds, 2),
        "igraph_per_customer_seconds": round(igraph_seconds, 2),
        "lists": len(per_customer),
        "lists_differing": sum(lists.get(c) != v for c, v in per_customer.items()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "datasets"}, indent=2))
    for name, dataset in result["datasets"].items():
        print(name, json.dumps(dataset["targets"]))
        methods = dataset["evaluate"]["methods"]
        for method, row in sorted(
            methods.items(), key=lambda kv: -kv[1]["metrics"]["ndcg@10"]["value"]
        ):
            returning = row["returning_metrics"] or {}
            print(
                f"  {method:13}",
                {m: f["value"] for m, f in row["metrics"].items()},
                "returning ndcg@10",
                returning.get("ndcg@10", {}).get("value"),
            )


if __name__ == "__main__":
    main()
