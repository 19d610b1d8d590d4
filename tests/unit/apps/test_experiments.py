"""Experiment arms: a customer's arm is stable, the split follows the shares, and a wrong
definition is named before anything is written."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bulk360.apps.experiments import Arm, Experiment, _check, assign
from bulk360.errors import ConfigError

START = datetime(2026, 11, 1, tzinfo=UTC)
CUSTOMERS = [str(n) for n in range(1, 3001)]


def experiment(name: str, *shares: float) -> Experiment:
    arms = tuple(Arm(f"arm{i}", "weighted", share) for i, share in enumerate(shares))
    return Experiment(name, arms, START, START + timedelta(days=7))


@pytest.mark.parametrize("shares", [(1, 1), (50, 50), (1, 1, 2), (0.1, 0.9)])
def test_the_split_of_3000_customers_follows_the_shares_within_5_points(
    shares: tuple[float, ...],
) -> None:
    made = experiment("split", *shares)
    counts = Counter(assign(made, c).name for c in CUSTOMERS)
    for i, share in enumerate(shares):
        expected = share / sum(shares)
        assert abs(counts[f"arm{i}"] / len(CUSTOMERS) - expected) <= 0.05, (shares, counts)


def test_a_customer_keeps_their_arm_and_experiments_split_independently() -> None:
    first, second = experiment("first", 1, 1), experiment("second", 1, 1)
    arms = [assign(first, c).name for c in CUSTOMERS]
    assert arms == [assign(experiment("first", 1, 1), c).name for c in CUSTOMERS]
    # Another experiment's arms do not follow this one's: about half the customers agree.
    agree = sum(a == assign(second, c).name for a, c in zip(arms, CUSTOMERS, strict=True))
    assert 0.45 < agree / len(CUSTOMERS) < 0.55, agree
    # Shares change the arms of few customers only at the boundary: the same hash points.
    moved = sum(
        a != assign(experiment("first", 1, 1.2), c).name
        for a, c in zip(arms, CUSTOMERS, strict=True)
    )
    assert 0 < moved / len(CUSTOMERS) < 0.1


@pytest.mark.parametrize(
    ("name", "arms", "ends", "message"),
    [
        ("a b", [Arm("x", "weighted", 1), Arm("y", "popular", 1)], None, "a name is letters"),
        ("one", [Arm("x", "weighted", 1)], None, "at least two arms"),
        ("bad", [Arm("x", "weighted", 1), Arm("y", "magic", 1)], None, "unknown strategy 'magic'"),
        ("dup", [Arm("x", "weighted", 1), Arm("x", "popular", 1)], None, "arm 'x'"),
        ("zero", [Arm("x", "weighted", 1), Arm("y", "popular", 0)], None, "above 0"),
        ("late", [Arm("x", "weighted", 1), Arm("y", "popular", 1)], START, "end after"),
    ],
)
def test_a_wrong_definition_is_named(
    name: str, arms: list[Arm], ends: datetime | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _check(name, arms, START, ends)
