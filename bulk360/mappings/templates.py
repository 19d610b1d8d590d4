"""Templates: one set of rules for several sources of the same schema (one per tenant).

A template names its tenants (tenant → source) and holds label, relationship, exclude, keep and
type rows without a source. It expands to the rows each tenant's source needs:

* a label row per tenant, labelled ``<Label>_<tenant>`` (its keys unique within the tenant) with
  the group label ``<Label>``, which every tenant's nodes carry (``MATCH (c:Customer)`` finds
  them all, ``MATCH (c:Customer_acme)`` one tenant's);
* a relationship row per tenant whose ends are the tenant's labels when they are the template's
  (joins stay within a tenant) and stay as written otherwise (a label mapped outside the
  template, e.g. a catalogue shared by all tenants); a link table is the tenant's unless the row
  names its source;
* exclude, keep and type rows per tenant's source.

A join across tenants is an ordinary relationship row between two tenants' labels. The control
database holds the expanded rows (``mappings export`` writes them, not the template).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["expand", "tenant_label"]

Row = dict[str, Any]


def tenant_label(label: str, tenant: str) -> str:
    """A template label's label for one tenant."""
    return f"{label}_{tenant}"


def expand(template: Mapping[str, Any]) -> Iterator[tuple[str, Row, int]]:
    """(section, row, index of the template's row in its section) of every expanded row, in
    file order, tenant by tenant."""
    tenants: Mapping[str, str] = template["tenants"]
    own = {row["label"] for row in template.get("labels") or []}
    for tenant, source in tenants.items():

        def label(name: str, tenant: str = tenant) -> str:
            return tenant_label(name, tenant) if name in own else name

        for index, row in enumerate(template.get("labels") or []):
            yield (
                "labels",
                {
                    "source": source,
                    **{k: v for k, v in row.items() if k != "label"},
                    "label": label(row["label"]),
                    "group": row["label"],
                },
                index,
            )
        for index, row in enumerate(template.get("relationships") or []):
            expanded = dict(row)
            for end in ("from", "to"):
                expanded[end] = {**row[end], "label": label(row[end]["label"])}
            if "link" in row:
                expanded["link"] = {"source": source, **row["link"]}
            yield "relationships", expanded, index
        for section in ("exclude", "keep", "types"):
            for index, row in enumerate(template.get(section) or []):
                yield section, {"source": source, **row}, index
