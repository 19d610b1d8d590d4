"""The join rules of relationship mappings, stated once; the engines only execute them.

A mapping relates rows of a **from** side and a **to** side (nodes of two labels, or of one),
directly by key pairs (``a.account_id = pm.account_id``) or through a **link** table whose rows
name both ends (``t.ticket_id = l.ticket_id AND l.tag_id = g.tag_id``; further from-to pairs
may narrow it). The rules, for both engines (:mod:`bulk360.engines.local.transform` with Polars,
:mod:`bulk360.engines.spark.joins` with Spark):

1. **Filters first.** A side keeps only the rows whose filter columns hold one of the filter's
   literals (compared as the text PostgreSQL wrote). Rows left out are neither related nor
   counted anywhere.
2. **NULL relates nothing.** A row whose join key (any column of it) is NULL matches no row, as
   in SQL; on the driving side it is *rejected*, not an orphan.
3. **Every match is a relationship.** Each pair of rows whose keys are equal (through a link
   row: each link row with a matching from row and a matching to row, and the from-to pairs
   equal) gives one relationship, with the property columns of the sides it names. A row whose
   key matches several rows gives several relationships: the *fan-out*.
4. **The driving side.** The ledger counts the rows of one side: the link table when there is
   one; otherwise the side whose keys repeat, because it refers to the other (a payment method
   names its account). When neither side's keys repeat, or both do, it is the from side, and
   the unmatched rows of both sides are reported as orphans.
5. **The ledger.** On the driving side: ``read`` rows (after filters) = ``matched`` (a key that
   matched) + ``rejected`` (a NULL key) + ``orphaned`` (a key that matched nothing); and
   ``read + fan-out = written + rejected + orphaned``, where ``fan-out = written - matched``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bulk360.control.config import RelationshipMapping
from bulk360.plan.tables import TablePlan

__all__ = [
    "ROLES",
    "MappingLedger",
    "RelationshipPlan",
    "Role",
    "SideCounts",
    "counted_sides",
    "driving_side",
]

Role = Literal["from", "to", "link"]
ROLES: tuple[Role, ...] = ("from", "to", "link")


@dataclass(frozen=True)
class RelationshipPlan:
    """A relationship mapping resolved to tables and join-key header fields.

    ``*_keys`` pair header fields of two sides: ``from_link_keys`` are (from, link) pairs,
    ``link_to_keys`` (link, to) pairs and ``from_to_keys`` (from, to) pairs.
    """

    mapping: RelationshipMapping
    from_table: TablePlan
    to_table: TablePlan
    link_table: TablePlan | None
    from_to_keys: tuple[tuple[str, str], ...]
    from_link_keys: tuple[tuple[str, str], ...]
    link_to_keys: tuple[tuple[str, str], ...]
    properties: tuple[tuple[Role, str], ...]
    """(role, header) pairs, in the order of the relationship file's property columns."""
    filters: tuple[tuple[Role, str, tuple[str, ...]], ...] = ()
    """(role, header, values): only rows of that side whose text is one of ``values``."""

    @property
    def relationship_type(self) -> str:
        return self.mapping.relationship_type

    @property
    def name(self) -> str:
        """Unique name of the mapping's output, e.g. ``HAS_PAYMENT_METHOD.3``."""
        return f"{self.mapping.relationship_type}.{self.mapping.mapping_id}"

    @property
    def roles(self) -> tuple[Role, ...]:
        """The sides of the mapping: from and to, and link when it has a link table."""
        return ("from", "to", "link") if self.link_table is not None else ("from", "to")

    def table(self, role: Role) -> TablePlan:
        """The table of one side."""
        if role == "link":
            assert self.link_table is not None
            return self.link_table
        return self.from_table if role == "from" else self.to_table

    def key_headers(self, role: Role) -> list[str]:
        """The join-key headers of one side, in every pair it takes part in."""
        if role == "from":
            return [f for f, _ in self.from_to_keys] + [f for f, _ in self.from_link_keys]
        if role == "to":
            return [t for _, t in self.from_to_keys] + [t for _, t in self.link_to_keys]
        return [k for _, k in self.from_link_keys] + [k for k, _ in self.link_to_keys]

    def referring_keys(self, role: Role) -> list[str]:
        """The keys whose NULL rejects a row of the driving side ``role``: a direct side's
        keys, or the link's keys to both ends."""
        if role == "link":
            return self.key_headers("link")
        return [pair[0 if role == "from" else 1] for pair in self.from_to_keys]

    def property_headers(self, role: Role) -> list[str]:
        """The relationship properties one side contributes."""
        return [header for r, header in self.properties if r == role]

    def filters_of(self, role: Role) -> list[tuple[str, tuple[str, ...]]]:
        """(header, values) of the filters on one side."""
        return [(header, values) for r, header, values in self.filters if r == role]

    def side_headers(self, role: Role) -> list[str]:
        """The headers a side carries into the join, once each: its node id (from and to), its
        join keys and its properties."""
        ids = [self.table(role).id_header] if role != "link" else []
        return list(dict.fromkeys([*ids, *self.key_headers(role), *self.property_headers(role)]))

    def read_headers(self, role: Role) -> list[str]:
        """Every header the mapping reads of one side: :meth:`side_headers` and the columns its
        filters compare."""
        filtered = [header for header, _ in self.filters_of(role)]
        return list(dict.fromkeys([*self.side_headers(role), *filtered]))

    def file_headers(self) -> list[str]:
        """The header of the relationship file: the two node ids, then the properties."""
        return [":START_ID", ":END_ID", *[header for _, header in self.properties]]


def driving_side(from_unique: bool, to_unique: bool) -> Role:
    """The side of a direct mapping whose rows the ledger counts (rule 4): the side whose keys
    repeat refers to the other; the from side when neither or both repeat."""
    return "to" if from_unique and not to_unique else "from"


def counted_sides(from_unique: bool, to_unique: bool) -> tuple[Role, ...]:
    """The sides of a direct mapping whose unmatched rows are orphans: the driving side, and
    both when neither side's keys repeat or both do."""
    if from_unique == to_unique:
        return ("from", "to")
    return (driving_side(from_unique, to_unique),)


@dataclass(frozen=True)
class SideCounts:
    """What an engine counts of one side of a mapping (after its filters)."""

    read: int
    """Rows of the side."""
    non_null: int
    """Rows whose join keys are all set (a link row: its keys to both ends)."""
    matched: int
    """Rows (with keys set) related to anything: a key equal on the other side; a link row with
    a from row and a to row whose keys and from-to pairs are equal."""

    @property
    def rejected(self) -> int:
        return self.read - self.non_null

    @property
    def orphaned(self) -> int:
        return self.non_null - self.matched


@dataclass(frozen=True)
class MappingLedger:
    """A mapping's ledger, counted on its driving side (rule 5)."""

    driving: Role
    read: int
    rejected: int
    orphaned: int
    matched: int

    @classmethod
    def of(cls, driving: Role, counts: SideCounts) -> MappingLedger:
        return cls(driving, counts.read, counts.rejected, counts.orphaned, counts.matched)

    def fanout(self, relationships: int) -> int:
        """Relationships beyond one per matched row."""
        return relationships - self.matched

    def balances(self, written: int, expected: int) -> bool:
        """``read + fan-out = written + rejected + orphaned``, with everything the files hold
        (``expected``) written."""
        fanout = self.fanout(expected)
        return written == expected and (
            self.read + fanout == expected + self.rejected + self.orphaned
        )

    def equation(self, written: int, expected: int) -> str:
        """The ledger as a line, e.g. for a mapping that does not balance."""
        return (
            f"read {self.read:,} + fan-out {self.fanout(expected):,} ≠ written {written:,} + "
            f"rejected {self.rejected:,} + orphaned {self.orphaned:,}"
        )
