"""Validation of control rows against catalogs, without any database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bulk360.control import (
    ControlConfig,
    ExclusionRule,
    NodeMapping,
    RelationshipMapping,
    SchemaBaseline,
    Source,
    TypeOverride,
)
from bulk360.errors import ValidationFailed
from bulk360.plan import build_plan
from bulk360.plan.catalog import CatalogColumn, CatalogTable


def table(name: str, key: str, **columns: str) -> CatalogTable:
    cols = tuple(
        CatalogColumn(n, t, "N" if t.startswith("int") else "S", None, n == key)
        for n, t in columns.items()
    )
    return CatalogTable(name, cols, (key,), (frozenset({key}),), 0)


CATALOGS = {
    "profiles": {
        "accounts": table(
            "accounts", "account_id", account_id="int4", email="text", hashed_password="text"
        ),
        "cards": table("cards", "card_id", card_id="int4", account_id="int4", fingerprint="text"),
    },
    "support": {
        "tickets": table("tickets", "ticket_id", ticket_id="int4", customer_email="varchar")
    },
}
SOURCES = (
    Source("profiles", "h", 5432, "p", "u", "public"),
    Source("support", "h", 5432, "s", "u", "public"),
)


def rel(mapping_id: int = 1, **changes: object) -> RelationshipMapping:
    base = RelationshipMapping(
        mapping_id,
        "HAS_CARD",
        "Account",
        "a",
        "Card",
        "c",
        "a.account_id = c.account_id",
        None,
        None,
        None,
        (),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def config(
    *relationships: RelationshipMapping, nodes: tuple[NodeMapping, ...] | None = None
) -> ControlConfig:
    return ControlConfig(
        sources=SOURCES,
        exclusions=(ExclusionRule(7, "profiles", "accounts", "hashed_password", "secret"),),
        nodes=nodes
        or (
            NodeMapping(1, "profiles", "accounts", "Account", None),
            NodeMapping(2, "profiles", "cards", "Card", None),
            NodeMapping(3, "support", "tickets", "Ticket", None),
        ),
        relationships=relationships,
    )


def problems(cfg: ControlConfig) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        build_plan(cfg, CATALOGS)
    return caught.value.problems


def test_valid_plan_never_selects_excluded_columns() -> None:
    cross = rel(
        2,
        relationship_type="SUBMITTED",
        to_label="Ticket",
        to_alias="t",
        join_condition="a.email = t.customer_email",
    )
    plan = build_plan(config(rel(), cross), CATALOGS)
    accounts = next(t for t in plan.tables if t.label == "Account")
    assert accounts.excluded == ("hashed_password",)
    assert "hashed_password" not in accounts.copy_sql().as_string(None)
    assert [r.from_to_keys for r in plan.relationships] == [
        (("account_id:long", "account_id:long"),),
        (("email:string", "customer_email:string"),),
    ]


def test_row_filters_are_planned_with_their_side_and_header() -> None:
    filtered = rel(
        join_condition="a.account_id = c.account_id AND c.fingerprint IN ('fp1', 'fp2')"
        " AND a.account_id = 3"
    )
    (plan,) = build_plan(config(filtered), CATALOGS).relationships
    assert plan.filters == (
        ("to", "fingerprint:string", ("fp1", "fp2")),
        ("from", "account_id:long", ("3",)),
    )
    assert plan.from_to_keys == (("account_id:long", "account_id:long"),)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (
            rel(join_condition="a.account_id = x.account_id"),
            "alias 'x' in 'x.account_id' is not bound",
        ),
        (
            rel(join_condition="a.account_id ="),
            "join_condition: 'a.account_id =' is not a valid condition",
        ),
        (rel(join_condition="a.email = c.account_id"), "compares text with int4"),
        (rel(join_condition="a.nope = c.account_id"), "column 'a.nope' does not exist"),
        (rel(join_condition="a.hashed_password = c.fingerprint"), "excluded by exclusion rule #7"),
        (
            rel(relationship_type="HAS CARD"),
            "relationship type 'HAS CARD' is not a valid identifier",
        ),
        (rel(to_alias="a"), "ambiguous"),
        (rel(to_label="Nope"), "to_label 'Nope' is not the label of an active node mapping"),
        (
            rel(join_condition="a.account_id = c.account_id AND c.card_id = 'x'"),
            "filter 'c.card_id = 'x'' compares a int4 column with string literals",
        ),
        (
            rel(join_condition="a.account_id = c.account_id AND c.fingerprint = 5"),
            "compares a text column with number literals",
        ),
        (
            rel(join_condition="a.account_id = c.account_id AND a.hashed_password = 'x'"),
            "excluded by exclusion rule #7",
        ),
    ],
)
def test_each_bad_relationship_is_named(mapping: RelationshipMapping, expected: str) -> None:
    found = problems(config(mapping))
    assert len(found) == 1, found
    assert found[0].startswith("relationship mapping #1 ")
    assert expected in found[0]


def test_bad_nodes_are_all_listed_in_one_report() -> None:
    nodes = (
        NodeMapping(1, "profiles", "accounts", "Bad Label", None),
        NodeMapping(2, "profiles", "missing_table", "Card", None),
        NodeMapping(3, "support", "tickets", "Ticket", ("no_such_key",)),
    )
    found = problems(config(nodes=nodes))
    assert any(
        "node mapping #1" in p and "label 'Bad Label' is not a valid identifier" in p for p in found
    )
    assert any(
        "node mapping #2" in p and "table public.missing_table does not exist" in p for p in found
    )
    assert any(
        "node mapping #3" in p and "key column 'no_such_key' does not exist" in p for p in found
    )


def with_column(name: str, typname: str, type_text: str) -> dict[str, dict[str, CatalogTable]]:
    """CATALOGS with one more column in profiles.accounts."""
    accounts = CATALOGS["profiles"]["accounts"]
    extra = CatalogColumn(name, typname, "S", None, False, type_text)
    changed = replace(accounts, columns=(*accounts.columns, extra))
    return {**CATALOGS, "profiles": {**CATALOGS["profiles"], "accounts": changed}}


BASELINE = {
    ("profiles", "accounts"): SchemaBaseline(
        41, {"account_id": "", "email": "", "hashed_password": ""}
    )
}


def test_a_new_column_without_a_rule_is_a_blocking_schema_change() -> None:
    cfg = replace(config(), baselines=BASELINE)
    plan = build_plan(cfg, with_column("ssn", "text", "text"))
    (change,) = plan.schema_changes
    assert change.blocking and (change.source, change.table, change.column) == (
        "profiles",
        "accounts",
        "ssn",
    )
    assert change.text.startswith(
        "source 'profiles', table public.accounts: new column 'ssn' (text) since run 41 has no rule"
    )
    assert "VALUES ('profiles', 'accounts', 'ssn', false, 'reviewed')" in change.text
    assert "VALUES ('profiles', 'accounts', 'ssn', true, 'not for the graph')" in change.text
    # The column is not read until a rule says so (the gate stops the run before reading).
    assert build_plan(config(), with_column("ssn", "text", "text")).schema_changes == ()


def test_a_keep_or_exclusion_rule_covers_a_new_column() -> None:
    keep = ExclusionRule(8, "profiles", "accounts", "ssn", "reviewed", is_excluded=False)
    kept = build_plan(
        replace(config(), baselines=BASELINE, kept=(keep,)), with_column("ssn", "text", "text")
    )
    assert kept.schema_changes == ()
    exclude = ExclusionRule(9, "profiles", "accounts", "ssn", "secret")
    cfg = replace(config(), baselines=BASELINE, exclusions=(*config().exclusions, exclude))
    plan = build_plan(cfg, with_column("ssn", "text", "text"))
    assert plan.schema_changes == ()
    accounts = next(t for t in plan.tables if t.label == "Account")
    assert "ssn" not in accounts.copy_sql().as_string(None)


def test_a_changed_type_blocks_and_a_dropped_column_is_a_note() -> None:
    baseline = {
        ("profiles", "accounts"): SchemaBaseline(
            41,
            {"account_id": "", "email": "varchar(50)", "hashed_password": "", "nickname": "text"},
        )
    }
    plan = build_plan(replace(config(), baselines=baseline), CATALOGS)
    texts = {c.column: (c.blocking, c.text) for c in plan.schema_changes}
    assert texts["email"] == (
        True,
        "source 'profiles', table public.accounts: column 'email' changed type from "
        "varchar(50) to  since run 41",
    )
    assert texts["nickname"][0] is False and "was dropped since run 41" in texts["nickname"][1]
    assert [c.column for c in plan.blocking_changes] == ["email"]


def test_type_overrides_are_checked_against_the_catalog() -> None:
    overrides = (
        TypeOverride(1, "profiles", "accounts", "email", "double"),
        TypeOverride(2, "profiles", "accounts", "nope", "string"),
        TypeOverride(3, "profiles", "accounts", "account_id", "decimal"),
    )
    found = problems(replace(config(), overrides=overrides))
    assert any("type override #1" in p and "cannot be a double" in p for p in found), found
    assert any("type override #2" in p and "column 'nope' does not exist" in p for p in found)
    assert any(
        "type override #3" in p and "'decimal' is not one of double, string" in p for p in found
    )


def test_an_override_that_splits_a_join_key_is_named() -> None:
    string_key = TypeOverride(1, "profiles", "cards", "account_id", "string")
    found = problems(replace(config(rel()), overrides=(string_key,)))
    assert any("joins account_id:long with account_id:string" in p for p in found), found
