"""Templates through the command line: three same-schema tenant databases mapped by one template
build the graph whose counts are the sum of three single-tenant builds, joins staying within a
tenant, in bolt, sync and admin mode against the real PostgreSQL and Neo4j."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from neo4j import Driver

from bulk360 import RunOptions
from bulk360.pipeline import run
from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli
from tests.helpers.databases import recreate_database, sample_control
from tests.helpers.services import cypher, run_services

PREFIX = "bulk360_test_tenants_"
TENANTS = {"acme": 3, "beta": 5, "gamma": 8}
"""Tenant → customers (keys 1..n in every tenant: the same keys, other people)."""


def tenant_rows(customers: int) -> list[str]:
    orders = ", ".join(
        f"({c * 10 + i}, {c}, {c * 10 + i}.50)"
        for c in range(1, customers + 1)
        for i in range(c % 3)
    )
    people = ", ".join(
        f"({c}, 'person {c}', '{'FR' if c % 2 else 'DE'}', 'hash{c}')"
        for c in range(1, customers + 1)
    )
    return [
        "CREATE TABLE customers (customer_id int PRIMARY KEY, name text, country text,"
        " password_hash text)",
        "CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int, total numeric(8,2))",
        f"INSERT INTO customers VALUES {people}",
        # Order 999 names customer 999, whom no tenant has: an orphan in every build.
        f"INSERT INTO orders VALUES {orders}, (999, 999, 1.00)",
    ]


def execute(settings: Settings, database: str, *statements: str) -> None:
    conninfo = {**settings.control_conninfo(), "dbname": database}
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def source_rows(settings: Settings, names: list[str]) -> str:
    return "sources:\n" + "".join(
        f"- name: {name}\n  host: {settings.etl_db_host}\n  port: {settings.etl_db_port}\n"
        f"  database: {PREFIX}{name}\n  user: {settings.etl_db_user}\n"
        "  password_env: ETL_DB_PASSWORD\n"
        for name in names
    )


SHARED = """\
labels:
- {source: catalog, table: countries, label: Country}
"""

TEMPLATE = """\
templates:
- name: shops
  tenants: {acme: acme, beta: beta, gamma: gamma}
  labels:
  - {table: customers, label: Customer}
  - {table: orders, label: Order}
  relationships:
  - type: PLACED
    from: {label: Customer, alias: c}
    to: {label: Order, alias: o}
    join: c.customer_id = o.customer_id
  - type: LIVES_IN
    from: {label: Customer, alias: c}
    to: {label: Country, alias: k}
    join: c.country = k.code
  exclude:
  - {table: customers, column: password_hash, reason: a credential}
"""

SINGLE = """\
- {source: TENANT, table: customers, label: Customer}
- {source: TENANT, table: orders, label: Order}
relationships:
- type: PLACED
  from: {label: Customer, alias: c}
  to: {label: Order, alias: o}
  join: c.customer_id = o.customer_id
- type: LIVES_IN
  from: {label: Customer, alias: c}
  to: {label: Country, alias: k}
  join: c.country = k.code
exclude:
- {source: TENANT, table: customers, column: password_hash, reason: a credential}
"""


def control(settings: Settings, name: str, import_dir: Path) -> Settings:
    return sample_control(settings, PREFIX + name, import_dir)


def apply(settings: Settings, path: Path, text: str) -> None:
    path.write_text("version: 1\n" + text)
    result = bulk360_cli(settings, settings.import_dir, "mappings", "apply", str(path))
    assert result.returncode == 0, result.output


@pytest.fixture(scope="module")
def tenants(settings: Settings, pg_conninfo: dict[str, object]) -> Settings:
    for tenant, customers in TENANTS.items():
        recreate_database(settings, PREFIX + tenant)
        execute(settings, PREFIX + tenant, *tenant_rows(customers))
    recreate_database(settings, PREFIX + "catalog")
    execute(
        settings,
        PREFIX + "catalog",
        "CREATE TABLE countries (code text PRIMARY KEY, name text)",
        "INSERT INTO countries VALUES ('FR', 'France'), ('DE', 'Germany'), ('IT', 'Italy')",
    )
    return settings


@pytest.fixture(scope="module")
def singles(
    tenants: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, int]]:
    """Per tenant, the counts of a build of that tenant alone (rows typed without a template)."""
    found = {}
    for tenant in TENANTS:
        folder = tmp_path_factory.mktemp(f"single_{tenant}")
        ours = control(tenants, f"control_{tenant}", folder / "import")
        apply(
            ours,
            folder / "single.yaml",
            source_rows(tenants, ["catalog", tenant]) + SHARED + SINGLE.replace("TENANT", tenant),
        )
        summary = run(ours, RunOptions(mode="csv"))
        assert summary.status == "succeeded"
        found[tenant] = {
            **summary.nodes,
            **{name.split(".")[0]: n for name, n in summary.relationships.items()},
        }
    return found


@pytest.fixture(scope="module")
def templated(tenants: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("templated")
    ours = control(tenants, "control_template", folder / "import")
    text = source_rows(tenants, ["catalog", *TENANTS]) + SHARED + TEMPLATE
    apply(ours, folder / "mappings.yaml", text)
    return ours


def graph_counts(driver: Driver) -> dict[str, int]:
    labels = cypher(driver, "MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n")
    types = cypher(driver, "MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n")
    return {r["label"]: r["n"] for r in labels} | {r["type"]: r["n"] for r in types}


def assert_sum_of_singles(driver: Driver, singles: dict[str, dict[str, int]]) -> None:
    counts = graph_counts(driver)
    for name in ("Customer", "Order", "PLACED", "LIVES_IN"):
        assert counts[name] == sum(single[name] for single in singles.values()), name
    for tenant, single in singles.items():
        assert counts[f"Customer_{tenant}"] == single["Customer"] == TENANTS[tenant]
        assert counts[f"Order_{tenant}"] == single["Order"]
        # Joins stay within a tenant (every tenant has customers 1, 2, 3).
        across = cypher(
            driver,
            f"MATCH (c:Customer_{tenant})-[:PLACED]->(o:Order) WHERE NOT o:Order_{tenant} "
            "RETURN count(*) AS n",
        )
        assert across == [{"n": 0}]
    assert counts["Country"] == 3  # shared: one node per country, whatever the tenants
    hashes = cypher(
        driver, "MATCH (c:Customer) WHERE c.password_hash IS NOT NULL RETURN count(*) AS n"
    )
    assert hashes == [{"n": 0}]


def test_expanded_rows_are_what_the_control_database_holds(
    templated: Settings, tmp_path: Path
) -> None:
    result = bulk360_cli(templated, templated.import_dir, "mappings", "export")
    assert result.returncode == 0, result.output
    assert "  label: Customer_beta\n  group: Customer\n" in result.stdout
    assert "from: {label: Customer_gamma, alias: c}\n  to: {label: Country, alias: k}" in (
        result.stdout
    )
    assert result.stdout.count("column: password_hash") == 3
    # The template file itself: equal to what it wrote.
    path = tmp_path / "again.yaml"
    path.write_text(
        "version: 1\n" + source_rows(templated, ["catalog", *TENANTS]) + SHARED + TEMPLATE
    )
    diff = bulk360_cli(templated, templated.import_dir, "mappings", "diff", str(path))
    assert diff.returncode == 0, diff.output


def test_a_template_over_three_tenants_imports_the_sum_of_three_builds(
    templated: Settings, singles: dict[str, dict[str, int]], neo4j_driver: Driver
) -> None:
    run_services("neo4j", "stop")
    try:
        args = ["run", "--mode", "admin", "--overwrite"]
        result = bulk360_cli(templated, templated.import_dir, *args)
    finally:
        run_services("neo4j", "start")
    assert result.returncode == 0, result.output
    assert_sum_of_singles(neo4j_driver, singles)
    verified = bulk360_cli(templated, templated.import_dir, "verify")
    assert verified.returncode == 0 and "graph matches the manifest" in verified.stdout, (
        verified.output
    )


def test_bolt_then_sync_write_every_tenant_row_with_both_labels(
    templated: Settings, singles: dict[str, dict[str, int]], neo4j_driver: Driver
) -> None:
    result = bulk360_cli(templated, templated.import_dir, "run", "--mode", "bolt", "--clear")
    assert result.returncode == 0, result.output
    assert_sum_of_singles(neo4j_driver, singles)
    execute(
        templated,
        PREFIX + "beta",
        "INSERT INTO customers VALUES (100, 'new', 'IT', 'hash')",
        "INSERT INTO orders VALUES (1000, 100, 5.00)",
    )
    try:
        result = bulk360_cli(templated, templated.import_dir, "run", "--mode", "sync")
        assert result.returncode == 0, result.output
        found = cypher(
            neo4j_driver,
            "MATCH (c {customer_id: 100})-[:PLACED]->(o) RETURN labels(c) AS customer,"
            " labels(o) AS order",
        )
        assert [(sorted(r["customer"]), sorted(r["order"])) for r in found] == [
            (["Customer", "Customer_beta"], ["Order", "Order_beta"])
        ]
        counts = graph_counts(neo4j_driver)
        assert counts["Customer"] == sum(TENANTS.values()) + 1
        assert counts["Customer_beta"] == TENANTS["beta"] + 1
    finally:
        execute(
            templated,
            PREFIX + "beta",
            "DELETE FROM orders WHERE order_id = 1000",
            "DELETE FROM customers WHERE customer_id = 100",
        )
