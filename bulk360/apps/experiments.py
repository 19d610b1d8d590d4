"""A/B experiments over the recommendation strategies: arms, assignment, served lists, events and
the report.

An experiment (``experiments``, ``experiment_arms``) splits customers between arms, each served
by one strategy. A customer's arm is fixed by a hash of (experiment, customer): the same on every
request, on every worker, with no state to keep. Every list the API serves is recorded under a
recommendation id (``served_recommendations``); the shop reports impressions, clicks,
add-to-carts and purchases against that id (``recommendation_events``, idempotent by event id).

The report gives per arm:

- **customers**: distinct customers served a list of the arm;
- **CTR**: the share of shown items (a list and a product with an impression) that were clicked;
- **conversion rate**: the share of the arm's customers who bought a product of one of its lists;
- **average order value**: the mean amount of the arm's purchases;

each with its 95% confidence interval (Wilson's for the two rates, Student's t for the mean).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bulk360.apps.strategies import STRATEGIES
from bulk360.control import connect_control
from bulk360.errors import ConfigError
from bulk360.settings import Settings

__all__ = [
    "EVENT_KINDS",
    "Arm",
    "ArmReport",
    "Event",
    "EventConflict",
    "EventRejected",
    "Experiment",
    "ExperimentReport",
    "Interval",
    "NoSuchExperiment",
    "NotRunning",
    "all_experiments",
    "assign",
    "choose_arm",
    "create_experiment",
    "end_experiment",
    "find_experiment",
    "get_experiment",
    "list_experiments",
    "record_event",
    "record_served",
    "report",
]

EVENT_KINDS = ("impression", "click", "add_to_cart", "purchase")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class EventRejected(ConfigError):
    """An event that refers to no served list, or to a product the list did not hold."""


class EventConflict(ConfigError):
    """An event id already recorded with other content."""


class NoSuchExperiment(ConfigError):
    """An experiment name that the control database does not hold."""


class NotRunning(ConfigError):
    """An experiment named that does not exist or does not run now."""


@dataclass(frozen=True)
class Arm:
    name: str
    strategy: str
    share: float
    """Relative: arms of shares 1 and 1 split customers half and half."""


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]
    starts_at: datetime
    ends_at: datetime | None

    def running(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


def assign(experiment: Experiment, customer: str) -> Arm:
    """The customer's arm: where the hash of (experiment, customer) falls on the arms' shares."""
    digest = hashlib.sha256(f"{experiment.name}\x00{customer}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(a.share for a in experiment.arms)
    for arm in experiment.arms:
        if point < arm.share:
            return arm
        point -= arm.share
    return experiment.arms[-1]


def _check(name: str, arms: Sequence[Arm], starts_at: datetime, ends_at: datetime | None) -> None:
    where = f"experiment '{name}'"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a name is letters, digits, '_', '.' or '-' (at most 63)")
    if len(arms) < 2:
        raise ConfigError(f"{where}: give at least two arms (--arm NAME=STRATEGY[:SHARE])")
    seen: set[str] = set()
    for arm in arms:
        if not _NAME.match(arm.name) or arm.name in seen:
            raise ConfigError(f"{where}: arm '{arm.name}' is not a new name of letters and digits")
        seen.add(arm.name)
        if arm.strategy not in STRATEGIES:
            raise ConfigError(
                f"{where}, arm '{arm.name}': unknown strategy '{arm.strategy}'"
                f" (one of {', '.join(STRATEGIES)})"
            )
        if not arm.share > 0:
            raise ConfigError(f"{where}, arm '{arm.name}': the share must be above 0")
    if ends_at is not None and ends_at <= starts_at:
        raise ConfigError(f"{where}: it must end after it starts ({starts_at:%Y-%m-%d %H:%M})")


def create_experiment(
    settings: Settings,
    name: str,
    arms: Sequence[Arm],
    starts_at: datetime,
    ends_at: datetime | None = None,
) -> Experiment:
    """Define an experiment; an existing name is refused (its events would mix)."""
    _check(name, arms, starts_at, ends_at)
    with connect_control(settings) as conn, conn.transaction():
        try:
            conn.execute(
                "INSERT INTO experiments (name, starts_at, ends_at) VALUES (%s, %s, %s)",
                [name, starts_at, ends_at],
            )
        except psycopg.errors.UniqueViolation:
            raise ConfigError(f"experiment '{name}' exists already") from None
        conn.cursor().executemany(
            "INSERT INTO experiment_arms (experiment, position, arm, strategy, share)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(name, i, a.name, a.strategy, a.share) for i, a in enumerate(arms)],
        )
    return Experiment(name, tuple(arms), starts_at, ends_at)


def _experiments(conn: psycopg.Connection[Any], name: str | None) -> list[Experiment]:
    rows = conn.execute(
        "SELECT e.name, e.starts_at, e.ends_at, a.arm, a.strategy, a.share FROM experiments e"
        " JOIN experiment_arms a ON a.experiment = e.name"
        " WHERE %(name)s::text IS NULL OR e.name = %(name)s"
        " ORDER BY e.starts_at DESC, e.name, a.position",
        {"name": name},
    ).fetchall()
    found: dict[str, Experiment] = {}
    for exp, starts, ends, arm, strategy, share in rows:
        known = found.get(exp) or Experiment(exp, (), starts, ends)
        found[exp] = Experiment(exp, (*known.arms, Arm(arm, strategy, share)), starts, ends)
    return list(found.values())


def all_experiments(conn: psycopg.Connection[Any]) -> list[Experiment]:
    """Every experiment with its arms, the one that started last first."""
    return _experiments(conn, None)


def find_experiment(conn: psycopg.Connection[Any], name: str) -> Experiment | None:
    found = _experiments(conn, name)
    return found[0] if found else None


def get_experiment(conn: psycopg.Connection[Any], name: str) -> Experiment:
    """The experiment named; NoSuchExperiment when there is none."""
    experiment = find_experiment(conn, name)
    if experiment is None:
        raise NoSuchExperiment(f"no experiment '{name}'")
    return experiment


def list_experiments(settings: Settings) -> list[Experiment]:
    with connect_control(settings) as conn:
        return all_experiments(conn)


def end_experiment(settings: Settings, name: str, at: datetime) -> None:
    with connect_control(settings) as conn:
        done = conn.execute(
            "UPDATE experiments SET ends_at = %s WHERE name = %s AND starts_at < %s",
            [at, name, at],
        ).rowcount
    if not done:
        raise ConfigError(f"no experiment '{name}' that started before {at:%Y-%m-%d %H:%M}")


def record_served(
    conn: psycopg.Connection[Any],
    customer: str,
    strategy: str,
    found: dict[str, Any],
    arm: tuple[Experiment, Arm] | None,
) -> UUID:
    """Record a list served to ``customer`` (``found``: source, rec_run_id, items); its id."""
    recommendation_id = uuid4()
    conn.execute(
        "INSERT INTO served_recommendations (recommendation_id, customer_key, strategy, source,"
        " rec_run_id, experiment, arm, products) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            recommendation_id,
            customer,
            strategy,
            found["source"],
            found["rec_run_id"],
            arm[0].name if arm else None,
            arm[1].name if arm else None,
            [item["product"] for item in found["items"]],
        ],
    )
    return recommendation_id


@dataclass(frozen=True)
class Event:
    event_id: UUID
    recommendation_id: UUID
    kind: str
    product: str
    amount: Decimal | None = None
    occurred_at: datetime | None = None


def record_event(conn: psycopg.Connection[Any], event: Event) -> bool:
    """Record what a customer did with a served list: True when new, False when the same event
    was recorded before. An unknown list or a product not on it is rejected, and so is an event
    id recorded before with other content."""
    with conn.transaction():
        served = conn.execute(
            "SELECT products FROM served_recommendations WHERE recommendation_id = %s",
            [event.recommendation_id],
        ).fetchone()
        if served is None:
            raise EventRejected(f"no recommendation {event.recommendation_id} was served")
        if event.product not in served[0]:
            raise EventRejected(
                f"product {event.product} is not on recommendation {event.recommendation_id}"
            )
        inserted = conn.execute(
            "INSERT INTO recommendation_events (event_id, recommendation_id, kind, product_key,"
            " amount, occurred_at) VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))"
            " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [
                event.event_id,
                event.recommendation_id,
                event.kind,
                event.product,
                event.amount,
                event.occurred_at,
            ],
        ).fetchone()
        if inserted:
            return True
        before = conn.execute(
            "SELECT recommendation_id, kind, product_key, amount, occurred_at"
            " FROM recommendation_events WHERE event_id = %s",
            [event.event_id],
        ).fetchone()
    assert before is not None
    same = before[:4] == (event.recommendation_id, event.kind, event.product, event.amount)
    if not same or event.occurred_at not in (None, before[4]):
        raise EventConflict(f"event {event.event_id} was recorded before with other content")
    return False


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ArmReport:
    arm: str
    strategy: str
    share: float
    customers: int
    lists: int
    impressions: int
    clicks: int
    """Shown items (list and product) that were clicked."""
    add_to_carts: int
    purchases: int
    buyers: int
    """Customers who bought a product of one of the arm's lists."""
    revenue: float
    ctr: Interval
    conversion_rate: Interval
    average_order_value: Interval


@dataclass(frozen=True)
class ExperimentReport:
    name: str
    starts_at: datetime
    ends_at: datetime | None
    arms: list[ArmReport]


def _wilson(successes: int, trials: int) -> Interval:
    from scipy.stats import binomtest

    if trials == 0:
        return Interval(None, None, None)
    low, high = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    return Interval(successes / trials, float(low), float(high))


def _mean(values: list[float]) -> Interval:
    from scipy.stats import t

    if not values:
        return Interval(None, None, None)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return Interval(mean, None, None)
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    margin = float(t.ppf(0.975, len(values) - 1)) * spread / len(values) ** 0.5
    return Interval(mean, mean - margin, mean + margin)


def report(settings: Settings, name: str) -> ExperimentReport:
    """Per arm: customers, CTR, conversion rate and average order value with 95% intervals."""
    import polars as pl

    with connect_control(settings) as conn:
        experiment = get_experiment(conn, name)
        served = conn.execute(
            "SELECT recommendation_id::text, customer_key, arm FROM served_recommendations"
            " WHERE experiment = %s",
            [name],
        ).fetchall()
        events = conn.execute(
            "SELECT e.recommendation_id::text, e.kind, e.product_key, e.amount::float8"
            " FROM recommendation_events e JOIN served_recommendations s USING (recommendation_id)"
            " WHERE s.experiment = %s",
            [name],
        ).fetchall()
    lists = pl.DataFrame(
        served, schema=["list", "customer", "arm"], orient="row", infer_schema_length=None
    )
    done = pl.DataFrame(
        events,
        schema={"list": pl.String, "kind": pl.String, "product": pl.String, "amount": pl.Float64},
        orient="row",
    ).join(lists, on="list")
    arms = []
    for arm in experiment.arms:
        mine = done.filter(pl.col("arm") == arm.name)
        shown = mine.filter(pl.col("kind") == "impression").select("list", "product").unique()
        clicked = mine.filter(pl.col("kind") == "click").select("list", "product").unique()
        purchases = mine.filter(pl.col("kind") == "purchase")
        customers = lists.filter(pl.col("arm") == arm.name).get_column("customer").n_unique()
        buyers = purchases.get_column("customer").n_unique()
        clicks = shown.join(clicked, on=["list", "product"]).height
        amounts = purchases.get_column("amount").to_list()
        arms.append(
            ArmReport(
                arm=arm.name,
                strategy=arm.strategy,
                share=arm.share,
                customers=customers,
                lists=lists.filter(pl.col("arm") == arm.name).height,
                impressions=shown.height,
                clicks=clicks,
                add_to_carts=mine.filter(pl.col("kind") == "add_to_cart").height,
                purchases=purchases.height,
                buyers=buyers,
                revenue=round(sum(amounts), 2),
                ctr=_wilson(clicks, shown.height),
                conversion_rate=_wilson(buyers, customers),
                average_order_value=_mean(amounts),
            )
        )
    return ExperimentReport(experiment.name, experiment.starts_at, experiment.ends_at, arms)


def choose_arm(
    known: Sequence[Experiment], customer: str, name: str | None, at: datetime
) -> tuple[Experiment, Arm] | None:
    """Of the ``known`` experiments, the one named (else the one running that started last)
    and the customer's arm; None when no experiment runs; NotRunning when the one named does
    not run at ``at``."""
    if name is None:
        experiment = next((e for e in known if e.running(at)), None)
        if experiment is None:
            return None
    else:
        experiment = next((e for e in known if e.name == name), None)
        if experiment is None or not experiment.running(at):
            raise NotRunning(f"no experiment '{name}' runs now")
    return experiment, assign(experiment, customer)
