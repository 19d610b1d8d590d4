"""``recommend evaluate``'s split by time, its metrics and its bad input, on small hand-made data."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.recommend.offline import cuts, evaluate, measure, split
from bulk360.apps.strategies import RecommendOptions
from bulk360.errors import ConfigError

OPTIONS = RecommendOptions()


def data(events: list[tuple[str, str, str, str]]) -> GraphData:
    """``events``: (customer, product, type, ISO time) rows."""
    weights = pl.DataFrame({"type": ["VIEWED", "PURCHASED"], "weight": [1.0, 5.0]})
    interactions = pl.DataFrame(events, schema=["customer", "product", "type", "at"], orient="row")
    customers = sorted({e[0] for e in events} | {"idle"})
    text = pl.String
    return GraphData(
        customers=pl.DataFrame({"customer": customers, "element_id": ""}),
        interactions=interactions.join(weights, on="type"),
        order_lines=pl.DataFrame(
            schema={"customer": text, "order": text, "product": text, "at": text}
        ),
        categories=pl.DataFrame(schema={"product": text, "category": text}),
    )


def ranked(rows: dict[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(c, i, p) for c, products in rows.items() for i, p in enumerate(products, start=1)],
        schema=["customer", "rank", "product"],
        orient="row",
    )


def test_the_truth_is_what_was_bought_after_the_cut_and_not_before() -> None:
    shop = data(
        [
            ("a", "1", "PURCHASED", "2026-01-01T10:00:00Z"),
            ("a", "1", "PURCHASED", "2026-03-01T10:00:00+01:00"),  # bought again: not news
            ("a", "2", "PURCHASED", "2026-03-02T10:00:00Z"),
            ("b", "3", "VIEWED", "2026-01-05T10:00:00Z"),
            ("b", "3", "PURCHASED", "2026-03-05T10:00:00Z[Europe/Paris]"),
            ("c", "1", "PURCHASED", "2026-01-02T00:00:00Z"),  # nothing after the cut
            ("d", "2", "PURCHASED", "2026-03-07T00:00:00Z"),  # new after the cut
        ]
    )
    found = split(shop, OPTIONS, datetime(2026, 2, 1, tzinfo=UTC))
    assert found.truth.rows() == [("a", "2"), ("b", "3"), ("d", "2")]
    assert (found.left_out, found.new) == (2, {"d"})  # c and idle; d
    assert found.train.interactions.height == 3


def test_metrics_of_known_lists() -> None:
    truth = pl.DataFrame({"customer": ["a", "a", "b"], "product": ["1", "2", "9"]})
    lists = ranked({"a": ["1", "5", "2"], "b": ["4", "5", "6"]})
    figures = measure(lists, truth, catalogue=10, seed=1, rounds=200)
    # a: hits at 1 and 3; b: none.
    assert figures["recall@10"]["value"] == pytest.approx(0.5)
    assert figures["hit_rate@10"]["value"] == pytest.approx(0.5)
    ap_a = (1 / 1 + 2 / 3) / 2  # H&M: divided by min(2 relevant, 12)
    assert figures["map@12"]["value"] == pytest.approx(ap_a / 2, abs=1e-4)
    ideal = 1 + 1 / 1.5849625  # two hits at 1 and 2
    assert figures["ndcg@10"]["value"] == pytest.approx((1 + 0.5) / ideal / 2, abs=1e-4)
    assert figures["coverage@10"]["value"] == pytest.approx(5 / 10)
    for figure in figures.values():
        assert figure["low"] <= figure["value"] <= figure["high"]


def test_map_at_12_caps_the_relevant_count_at_12() -> None:
    products = [str(i) for i in range(20)]
    truth = pl.DataFrame({"customer": ["a"] * 20, "product": products})
    figures = measure(ranked({"a": products[:12]}), truth, catalogue=20, seed=1, rounds=10)
    assert figures["map@12"]["value"] == pytest.approx(1.0)  # ranx alone: 12/20
    assert figures["recall@10"]["value"] == pytest.approx(10 / 20)


def test_a_cut_after_the_last_purchase_is_one_clear_error() -> None:
    shop = data([("a", "1", "PURCHASED", "2026-01-01T10:00:00Z")])
    with pytest.raises(ConfigError, match="no purchases after the cut"):
        cuts(shop, OPTIONS, cut=datetime(2027, 1, 1))
    with pytest.raises(ConfigError, match="holdout-days must be positive"):
        cuts(shop, OPTIONS, holdout_days=0)


def test_a_strategy_that_cannot_run_is_an_error_when_named_and_skipped_otherwise() -> None:
    events = [
        (c, p, "PURCHASED", f"2026-0{m}-1{d}T00:00:00Z")
        for c in "abcdef"
        for m, p in ((1, "1"), (2, "2"), (3, "3"))
        for d in range(3)
    ]
    shop = data(events)
    with pytest.raises(ConfigError, match="copurchase needs orders"):
        evaluate(shop, OPTIONS, ["copurchase"], holdout_days=20, explicit=True)
    result = evaluate(shop, OPTIONS, ["copurchase", "most_popular", "random"], holdout_days=20)
    assert set(result["skipped"]) == {"copurchase"}
    assert set(result["methods"]) == {"most_popular", "random"}
    assert result["customers"] + result["left_out"] == 7


def test_a_customer_without_a_list_scores_zero_and_the_others_keep_theirs() -> None:
    truth = pl.DataFrame({"customer": ["0", "b", "b"], "product": ["7", "1", "2"]})
    figures = measure(ranked({"b": ["1", "2"]}), truth, catalogue=10, seed=1, rounds=10)
    assert figures["recall@10"]["value"] == pytest.approx(0.5)
    assert figures["map@12"]["value"] == pytest.approx(0.5)  # b's 1.0, not scaled by 0's size
