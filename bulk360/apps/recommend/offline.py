"""``bulk360 recommend evaluate``: the strategies measured as the field measures them.

**The split is by time.** Everything before the cut is training data; what each customer
purchased after it (and had not purchased before) is what a list should have held. Customers
with no purchase after the cut are left out, and counted. Customers new after the cut stay in:
their lists come from the cold start, as they would in the shop. As those lists are the same for
every method, each method is also measured on the returning customers alone.

**Hyper-parameters are chosen on a validation cut** before the test cut, as far before it as the
test period is long: each method's grid is fitted on the data before the validation cut and
scored on the purchases between the two cuts (NDCG@10); the best point is fitted again on all the
data before the test cut and measured once on the test period.

**The metrics** are ranx's per-customer recall@10, NDCG@10 and hit rate@10, and MAP@12 as H&M's
competition scored it: ranx's average precision at 12 is divided by the number of relevant
products, the competition's by that number capped at 12, so each customer's figure is scaled by
``R / min(R, 12)``. Catalogue coverage is the share of the training catalogue in anyone's top 10.
Each figure has a 95% interval: the 2.5th and 97.5th percentiles of the figure over bootstrap
resamples of the evaluated customers.

**The baselines** are fitted on the same training interactions: implicit's ALS and BPR (on the
customer-product matrix of summed event weights), the most purchased products, and random
products. Every list, ours and theirs, drops the customer's purchases and is filled up to 12 from
the cold start (:func:`bulk360.apps.recommend.scoring.popular`), so they differ only in what
they rank. Nothing is stored: the result is returned (and printed by the command line).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from bulk360.apps.recommend.graph import GraphData, keyed_matrix
from bulk360.apps.recommend.rank import cannot_compute, compute, rank
from bulk360.apps.recommend.scoring import CANDIDATES, most_purchased, popular, summed_weights
from bulk360.apps.strategies import STRATEGIES, RecommendOptions
from bulk360.errors import ConfigError

__all__ = [
    "BASELINES",
    "GRIDS",
    "METRICS",
    "Split",
    "cannot_run",
    "cuts",
    "evaluate",
    "measure",
    "split",
]

K = 10
MAP_K = 12
METRICS = ("ndcg@10", "recall@10", "map@12", "hit_rate@10", "coverage@10")
BASELINES = ("als", "bpr", "most_popular", "random")
BOOTSTRAP_ROUNDS = 1000

GRIDS: dict[str, list[dict[str, Any]]] = {
    "als": [
        {"factors": f, "regularization": r, "alpha": a}
        for f in (8, 32, 128)
        for r in (0.01, 1.0, 10.0)
        for a in (1.0, 10.0)
    ],
    "bpr": [{"factors": f, "learning_rate": lr} for f in (32, 128) for lr in (0.01, 0.05)],
    "weighted": [{"neighbours": n} for n in (20, 50, 200)],
    "copurchase": [{"neighbours": n} for n in (20, 50, 200)],
    "node2vec": [
        {"customer_vector": v, "inout_q": q} for v in ("node", "products") for q in (0.5, 2.0)
    ],
}
"""The points each method is tried at on the validation cut (a method without a grid: its
defaults)."""


def _time(column: str) -> pl.Expr:
    """Neo4j's ``toString`` of a datetime (``Z``, an offset, or a zone id in brackets) as UTC."""
    text = pl.col(column).str.replace(r"\[.*\]$", "").str.replace(r"Z$", "+00:00")
    return text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False)


def _purchases(data: GraphData, options: RecommendOptions) -> pl.DataFrame:
    """(customer, product, time) of every purchase event and order line with a time."""
    events = data.interactions.filter(pl.col("type") == options.purchase_type)
    return pl.concat(
        [
            events.select("customer", "product", time=_time("at")),
            data.order_lines.select("customer", "product", time=_time("at")),
        ]
    ).drop_nulls("time")


@dataclass(frozen=True)
class Split:
    """The data before a cut, and what was purchased after it."""

    cut: datetime
    train: GraphData
    truth: pl.DataFrame
    """(customer, product): purchased after the cut and not before it."""
    left_out: int
    """Customers with no such purchase (not evaluated)."""
    new: frozenset[str]
    """Evaluated customers with no event and no order before the cut (each list is the cold
    start's for them, whatever the method)."""

    @property
    def customers(self) -> list[str]:
        return sorted(set(self.truth.get_column("customer")))


def split(data: GraphData, options: RecommendOptions, cut: datetime) -> Split:
    """Training data before ``cut`` (events and orders by their time), and the purchases after."""
    before = pl.col("time") < cut
    interactions = data.interactions.with_columns(time=_time("at"))
    lines = data.order_lines.with_columns(time=_time("at"))
    train = replace(
        data,
        interactions=interactions.filter(before).drop("time"),
        order_lines=lines.filter(before).drop("time"),
    )
    after = _purchases(data, options).filter(~before).select("customer", "product").unique()
    truth = after.join(
        train.purchased(options.purchase_type), on=["customer", "product"], how="anti"
    ).sort("customer", "product")
    evaluated = set(truth.get_column("customer"))
    known = set(train.interactions.get_column("customer")) | set(
        train.order_lines.get_column("customer")
    )
    return Split(
        cut=cut,
        train=train,
        truth=truth,
        left_out=data.customers.height - len(evaluated),
        new=frozenset(evaluated - known),
    )


def cuts(
    data: GraphData,
    options: RecommendOptions,
    cut: datetime | None = None,
    holdout_days: float | None = None,
) -> tuple[datetime, datetime]:
    """(validation cut, test cut). The test cut is ``cut``, or ``holdout_days`` before the last
    purchase, or (neither given) where the last tenth of the purchases begins; the validation cut
    is as far before it as the test period is long."""
    times = _purchases(data, options).get_column("time").sort()
    if times.is_empty():
        raise ConfigError(
            f"the graph has no :{options.purchase_type} purchases with a time; nothing to evaluate"
        )
    first, last = times[0], times[-1]
    if cut is not None:
        test = cut if cut.tzinfo else cut.replace(tzinfo=first.tzinfo)
    elif holdout_days is not None:
        if holdout_days <= 0:
            raise ConfigError(f"--holdout-days must be positive, not {holdout_days:g}")
        test = last - timedelta(days=holdout_days)
    else:
        test = times[int(len(times) * 0.9)]
    if test > last:
        raise ConfigError(
            f"no purchases after the cut {test.isoformat()}: the last purchase is at "
            f"{last.isoformat()}; choose an earlier --cut or fewer --holdout-days"
        )
    validation = test - (last - test)
    if validation <= first:
        raise ConfigError(
            f"the cut {test.isoformat()} leaves no training data before its validation cut "
            f"{validation.isoformat()} (the first purchase is at {first.isoformat()}); "
            "choose a later --cut or fewer --holdout-days"
        )
    return validation, test


def cannot_run(method: str, data: GraphData) -> str | None:
    """Why ``method`` cannot run on ``data`` (None: it can)."""
    if method not in STRATEGIES and method not in BASELINES:
        return f"unknown method {method}; choose from {', '.join(STRATEGIES + BASELINES)}"
    return cannot_compute(method, data)


def _factorised(
    method: str,
    train: GraphData,
    options: RecommendOptions,
    targets: list[str],
    depth: int,
    **params: Any,
) -> pl.DataFrame:
    """implicit's ALS or BPR candidates: the ``depth`` best-scored products per known target."""
    from threadpoolctl import threadpool_limits

    customers = sorted(set(train.interactions.get_column("customer")))
    products = sorted(set(train.interactions.get_column("product")))
    if not customers or not products:
        return pl.DataFrame(schema=CANDIDATES)
    weights = keyed_matrix(summed_weights(train), "customer", customers, "product", products)
    matrix = weights.astype(np.float32)
    with threadpool_limits(1, "blas"):  # implicit's own threads, not BLAS's, as it asks
        if method == "als":
            from implicit.cpu.als import AlternatingLeastSquares

            model: Any = AlternatingLeastSquares(
                iterations=15, random_state=options.seed, num_threads=1, **params
            )
        else:
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            model = BayesianPersonalizedRanking(
                iterations=100, random_state=options.seed, num_threads=1, **params
            )
        model.fit(matrix, show_progress=False)
        index = {c: i for i, c in enumerate(customers)}
        known = [c for c in targets if c in index]
        rows = np.array([index[c] for c in known], dtype=np.int64)
        ids, scores = model.recommend(
            rows, matrix[rows], N=min(depth, len(products)), filter_already_liked_items=False
        )
    return pl.DataFrame(
        {
            "customer": np.repeat(np.array(known, dtype=object), ids.shape[1]).tolist(),
            "product": [products[i] for i in ids.ravel()],
            "score": scores.ravel().astype(np.float64),
        },
        schema=CANDIDATES,
    )


def _baseline(
    method: str, train: GraphData, options: RecommendOptions, targets: list[str], **params: Any
) -> pl.DataFrame:
    """A baseline's ranked lists, through the same ranking and cold start as the strategies."""
    purchased = train.purchased(options.purchase_type)
    depth = MAP_K + most_purchased(train, options)
    if method in ("als", "bpr"):
        model = _factorised(method, train, options, targets, depth, **params)
    elif method == "most_popular":
        buyers = (
            purchased.group_by("product").len().sort(["len", "product"], descending=[True, False])
        )
        best = buyers.head(depth).select("product", score=pl.col("len").cast(pl.Float64))
        model = pl.DataFrame({"customer": targets}, schema={"customer": pl.String}).join(
            best, how="cross"
        )
    else:  # random
        products = sorted(set(train.interactions.get_column("product")))
        draws = np.random.default_rng(options.seed).random((len(targets), len(products)))
        picked = np.argsort(-draws, axis=1)[:, :depth]
        model = pl.DataFrame(
            {
                "customer": np.repeat(np.array(targets, dtype=object), picked.shape[1]).tolist(),
                "product": [products[i] for i in picked.ravel()],
                "score": np.take_along_axis(draws, picked, axis=1).ravel(),
            },
            schema=CANDIDATES,
        )
    cold = popular(train, options, targets)
    return rank(method, model, cold, purchased, MAP_K)


def lists(
    method: str,
    train: GraphData,
    options: RecommendOptions,
    targets: list[str],
    params: Mapping[str, Any],
) -> pl.DataFrame:
    """(customer, rank, product): ``method``'s top 12 for ``targets`` trained on ``train``."""
    if method in BASELINES:
        ranked = _baseline(method, train, options, targets, **params)
    else:
        ranked = compute(train, replace(options, top_n=MAP_K, **params), method, targets)
    return ranked.select("customer", "rank", "product")


def measure(
    ranked: pl.DataFrame,
    truth: pl.DataFrame,
    catalogue: int,
    seed: int,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> dict[str, dict[str, float]]:
    """Each metric's mean over the customers of ``truth`` with its 95% bootstrap interval."""
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    customers = sorted(set(truth.get_column("customer")))
    relevant = {
        c: {p: 1 for p in g.get_column("product")}
        for (c,), g in truth.sort("customer").group_by("customer", maintain_order=True)
    }
    run: dict[str, dict[str, float]] = {}
    for customer, position, product in ranked.filter(
        pl.col("customer").is_in(customers)
    ).iter_rows():
        # The rank, as a score ranx sorts by.
        run.setdefault(customer, {})[product] = float(MAP_K + 1 - position)
    names = [m for m in METRICS if not m.startswith("coverage")]
    if run:
        with warnings.catch_warnings():  # ranx's own casts of its query counts
            warnings.simplefilter("ignore")
            # A customer without a list (nothing left to offer) scores 0.
            qrels = Qrels(relevant)
            found = Run(run).make_comparable(qrels)
            ranx_evaluate(qrels, found, names, return_mean=False)
        per_customer = {m: np.array([found.scores[m][c] for c in customers]) for m in names}
    else:
        per_customer = {m: np.zeros(len(customers)) for m in names}
    sizes = np.array([len(relevant[c]) for c in customers], dtype=np.float64)
    per_customer["map@12"] = per_customer["map@12"] * sizes / np.minimum(sizes, MAP_K)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(customers), size=(rounds, len(customers)))
    result = {}
    for metric, values in per_customer.items():
        means = values[draws].mean(axis=1)
        result[metric] = _figure(float(values.mean()), means)
    top = ranked.filter(pl.col("rank") <= K, pl.col("customer").is_in(customers))
    products = sorted(set(top.get_column("product")))
    row, column = {c: i for i, c in enumerate(customers)}, {p: i for i, p in enumerate(products)}
    shown = np.zeros((len(customers), len(products)), dtype=np.float32)
    shown[
        [row[c] for c in top.get_column("customer")], [column[p] for p in top.get_column("product")]
    ] = 1
    weights = np.stack([np.bincount(d, minlength=len(customers)) for d in draws]).astype(np.float32)
    covered = ((weights @ shown) > 0).sum(axis=1) / max(catalogue, 1)
    coverage = len(products) / max(catalogue, 1)
    # A resample holds about 63% of the customers, and so fewer distinct products: its
    # coverage is biased low. The interval is moved by that bias (the bias-corrected percentile).
    result["coverage@10"] = _figure(coverage, np.clip(covered + coverage - covered.mean(), 0, 1))
    return {m: result[m] for m in METRICS}


def _figure(value: float, resampled: np.ndarray) -> dict[str, float]:
    low, high = np.percentile(resampled, [2.5, 97.5])
    return {"value": round(value, 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def evaluate(
    data: GraphData,
    options: RecommendOptions,
    methods: Sequence[str],
    cut: datetime | None = None,
    holdout_days: float | None = None,
    explicit: bool = False,
) -> dict[str, Any]:
    """Every method tuned on the validation cut and measured on the test cut (see the module).

    A method that cannot run on ``data`` is an error when ``explicit`` (the user named it), and
    otherwise listed under ``skipped`` with the reason."""
    skipped = {m: why for m in methods if (why := cannot_run(m, data))}
    if skipped and explicit:
        raise ConfigError(next(iter(skipped.values())))
    validation_cut, test_cut = cuts(data, options, cut, holdout_days)
    test = split(data, options, test_cut)
    validation = split(test.train, options, validation_cut)
    if validation.truth.is_empty():
        raise ConfigError(
            f"no purchases between the validation cut {validation_cut.isoformat()} and the cut "
            f"{test_cut.isoformat()}; choose another --cut or --holdout-days"
        )
    catalogue = len(set(test.train.interactions.get_column("product")))
    result: dict[str, Any] = {
        "cut": test_cut.isoformat(),
        "validation_cut": validation_cut.isoformat(),
        "customers": len(test.customers),
        "left_out": test.left_out,
        "new_customers": len(test.new),
        "validation_customers": len(validation.customers),
        "catalogue": catalogue,
        "relevant": test.truth.height,
        "methods": {},
        "skipped": skipped,
    }
    returning = test.truth.filter(~pl.col("customer").is_in(sorted(test.new)))
    validation_catalogue = len(set(validation.train.interactions.get_column("product")))
    for method in (m for m in methods if m not in skipped):
        started = time.perf_counter()
        tried = []
        for params in GRIDS.get(method, [{}]):
            found = lists(method, validation.train, options, validation.customers, params)
            figure = measure(found, validation.truth, validation_catalogue, options.seed, rounds=1)
            tried.append((figure["ndcg@10"]["value"], params))
        best_score, best = max(tried, key=lambda t: t[0])
        tuned = time.perf_counter() - started
        started = time.perf_counter()
        found = lists(method, test.train, options, test.customers, best)
        figures = measure(found, test.truth, catalogue, options.seed)
        # The same figures without the customers new after the cut, whose lists are all the
        # cold start's: where the methods differ.
        returned = measure(found, returning, catalogue, options.seed) if returning.height else None
        result["methods"][method] = {
            "kind": "baseline" if method in BASELINES else "strategy",
            "params": best,
            "validation_ndcg@10": best_score,
            "metrics": figures,
            "customers": len(test.customers),
            "returning_metrics": returned,
            "returning_customers": len(test.customers) - len(test.new),
            "seconds": round(time.perf_counter() - started, 2),
            "tuning_seconds": round(tuned, 2),
        }
    return result
