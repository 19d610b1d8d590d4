"""A simulated week of shop traffic for an experiment, so that its report shows real numbers.

Each day, each customer with stored lists visits with probability ``--visit-rate``; a visit is
served the customer's arm's list (as the API would serve it), shows its first ``--shown``
products, and the customer clicks a shown product more often when it is in one of their two
favourite categories (the categories of the products they engaged with most, read from the
graph), adds a clicked one to the cart, and buys some of those at the product's price times 1 to
3. Served lists and events are written as the API would write them, with times inside the
experiment's window (a week from its start when it has no end). What the customers do is
deterministic for a ``--seed`` and an experiment; the ids of lists and events are new each time.
An experiment that already holds served lists is refused (one line): its week would be mixed
with other traffic.

    python -m benchmarks.shop_week NAME [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from neo4j import Driver

from bulk360.apps.experiments import assign, get_experiment
from bulk360.apps.strategies import RecommendOptions
from bulk360.control import connect_control
from bulk360.errors import Bulk360Error, ConfigError
from bulk360.graph import connect_graph, quoted
from bulk360.settings import Settings, load_settings

CLICK = 0.03
CLICK_IF_FAVOURITE = 0.15
CART_IF_CLICKED = 0.4
BUY_IF_CARTED = 0.5


@dataclass(frozen=True)
class Week:
    lists: int
    events: int


def _graph_truth(
    driver: Driver, database: str, options: RecommendOptions
) -> tuple[dict[str, set[str]], dict[str, tuple[str, float]]]:
    """Each customer's two favourite categories; each product's category and price."""
    key, product = quoted(options.key_property), quoted(options.product_label)
    events = "|".join(quoted(t) for t in options.weights)
    in_category = quoted(options.in_category_type)
    records, _, _ = driver.execute_query(
        f"MATCH (c:{quoted(options.customer_label)})-[r:{events}]->(:{product})"
        f"-[:{in_category}]->(k) WITH c, k, count(r) AS n ORDER BY n DESC, toString(k.{key})"
        f" WITH c, collect(toString(k.{key}))[..2] AS top RETURN toString(c.{key}) AS c, top",
        database_=database,
    )
    favourites = {r["c"]: set(r["top"]) for r in records}
    records, _, _ = driver.execute_query(
        f"MATCH (p:{product})-[:{in_category}]->(k) RETURN toString(p.{key}) AS p,"
        f" toString(k.{key}) AS k, toFloat(coalesce(p.{quoted(options.price_property)}, 0)) AS price",
        database_=database,
    )
    return favourites, {r["p"]: (r["k"], r["price"]) for r in records}


def simulate_week(
    settings: Settings,
    driver: Driver,
    name: str,
    seed: int = 7,
    visit_rate: float = 0.3,
    shown: int = 5,
    options: RecommendOptions | None = None,
) -> Week:
    """Write a week of served lists and events for experiment ``name``."""
    options = options or RecommendOptions()
    rng = random.Random(f"{seed}/{name}")
    with connect_control(settings) as conn:
        experiment = get_experiment(conn, name)
        held = conn.execute(
            "SELECT count(*) FROM served_recommendations WHERE experiment = %s", [name]
        ).fetchone()
        if held and held[0]:
            raise ConfigError(
                f"experiment {name} already holds {held[0]:,} served lists: simulate a week "
                "in a new experiment (bulk360 experiments create)"
            )
        run_id = conn.execute(
            "SELECT max(rec_run_id) FROM recommendation_runs WHERE status = 'succeeded'"
        ).fetchone()
        if run_id is None or run_id[0] is None:
            raise ConfigError("no recommendation run: run `bulk360 recommend` first")
        lists: dict[tuple[str, str], list[str]] = {
            (strategy, customer): products
            for strategy, customer, products in conn.execute(
                "SELECT strategy, customer_key, array_agg(product_key ORDER BY rank)"
                " FROM recommendations WHERE rec_run_id = %s AND strategy = ANY(%s)"
                " GROUP BY strategy, customer_key",
                [run_id[0], [a.strategy for a in experiment.arms]],
            )
        }
    favourites, products = _graph_truth(driver, settings.neo4j_database, options)
    customers = sorted({customer for _, customer in lists})
    start = experiment.starts_at
    window = (experiment.ends_at or start + timedelta(days=7)) - start
    days = max(1, round(window / timedelta(days=1)))
    served: list[tuple[object, ...]] = []
    events: list[tuple[object, ...]] = []

    for day in range(days):
        for customer in customers:
            if rng.random() >= visit_rate:
                continue
            arm = assign(experiment, customer)
            items = lists.get((arm.strategy, customer), [])[:shown]
            if not items:
                continue
            at = start + window * ((day + rng.random() * 0.9) / days)
            list_id = uuid.uuid4()
            served.append(
                (list_id, customer, arm.strategy, run_id[0], experiment.name, arm.name, items, at)
            )
            liked = favourites.get(customer, set())
            for product in items:
                events.append((uuid.uuid4(), list_id, "impression", product, None, at))
                category, price = products.get(product, ("", 0.0))
                click = CLICK_IF_FAVOURITE if category in liked else CLICK
                if rng.random() >= click:
                    continue
                events.append((uuid.uuid4(), list_id, "click", product, None, at))
                if rng.random() >= CART_IF_CLICKED:
                    continue
                events.append((uuid.uuid4(), list_id, "add_to_cart", product, None, at))
                if rng.random() < BUY_IF_CARTED:
                    amount = Decimal(f"{price * rng.randint(1, 3):.2f}")
                    events.append((uuid.uuid4(), list_id, "purchase", product, amount, at))
    with connect_control(settings) as conn, conn.transaction(), conn.cursor() as cur:
        with cur.copy(
            "COPY served_recommendations (recommendation_id, customer_key, strategy, rec_run_id,"
            " experiment, arm, products, served_at, source) FROM STDIN"
        ) as copy:
            for row in served:
                copy.write_row((*row, "stored"))
        with cur.copy(
            "COPY recommendation_events (event_id, recommendation_id, kind, product_key, amount,"
            " occurred_at) FROM STDIN"
        ) as copy:
            for row in events:
                copy.write_row(row)
    return Week(len(served), len(events))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="The experiment (bulk360 experiments create).")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--visit-rate", type=float, default=0.3)
    args = parser.parse_args()
    settings = load_settings()
    try:
        with connect_graph(settings) as driver:
            week = simulate_week(settings, driver, args.name, args.seed, args.visit_rate)
    except Bulk360Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print(f"experiment {args.name}: {week.lists:,} lists served, {week.events:,} events")


if __name__ == "__main__":
    main()
