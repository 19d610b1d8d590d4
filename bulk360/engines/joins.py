"""Step 4's join procedure, written once: a relationship mapping's sides joined by the rules of
:mod:`bulk360.plan.rules`, its counted sides counted, over a few frame operations
(:class:`FrameOps`) that each engine implements on its own frames (Polars lazy frames in the
local engine and the follower, Spark data frames in the Spark engine).

1. each side keeps the rows its filters keep, its columns renamed by role so sides cannot
   clash (:meth:`FrameOps.side`);
2. a direct mapping joins its from and to sides on their key pairs; the side whose keys are
   unique is counted (both when both are), and drives the ledger;
3. a mapping through a link table joins each link row that names both ends with every from row
   and every to row it names; the link side is counted, and drives. When a term pairs the two
   ends directly too, which link rows relate anything shows only in the join: the link rows are
   numbered first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bulk360.plan import RelationshipPlan
from bulk360.plan.rules import MappingLedger, Role, SideCounts, counted_sides, driving_side

__all__ = ["FrameOps", "Related", "relate", "related_rows"]

F = TypeVar("F")

LINK_ROW = "link row"
"""The column that numbers link rows (rule 3 with a term between the two ends)."""


class FrameOps(Protocol[F]):
    """What the procedure asks of an engine's frames."""

    def side(self, frame: Any, role: Role, plan: RelationshipPlan) -> F:
        """The rows of ``frame`` that ``role``'s filters keep, its columns renamed."""
        ...

    def column(self, plan: RelationshipPlan, role: Role, header: str) -> str:
        """The renamed column of ``header`` on ``role``'s side."""
        ...

    def join(self, left: F, left_on: list[str], right: F, right_on: list[str]) -> F:
        """The inner join of ``left`` and ``right`` on the paired columns."""
        ...

    def semi(self, left: F, left_on: list[str], right: F, right_on: list[str]) -> F:
        """The rows of ``left`` that some row of ``right`` matches."""
        ...

    def drop_nulls(self, frame: F, columns: list[str]) -> F:
        """The rows of ``frame`` with every one of ``columns`` set."""
        ...

    def is_unique(self, frame: F, columns: list[str]) -> bool:
        """Whether no two rows with ``columns`` set repeat them."""
        ...

    def numbered(self, frame: F, column: str) -> F:
        """``frame`` with a distinct number per row in ``column``."""
        ...

    def distinct(self, frame: F, columns: list[str]) -> F:
        """The distinct values of ``columns`` in ``frame``."""
        ...

    def counts(self, frames: list[F]) -> list[int]:
        """The rows of each frame (an engine may count them together)."""
        ...


@dataclass(frozen=True)
class Related(Generic[F]):
    """A mapping's joined rows, its driving side and the counts of its counted sides."""

    rows: F
    driving: Role
    counts: dict[Role, SideCounts]

    @property
    def ledger(self) -> MappingLedger:
        return MappingLedger.of(self.driving, self.counts[self.driving])

    @property
    def orphans(self) -> dict[str, int]:
        return {role: counts.orphaned for role, counts in self.counts.items()}


@dataclass(frozen=True)
class _Keys:
    """The renamed key columns of a mapping, by the pairs they come from."""

    from_to: tuple[list[str], list[str]]
    """The direct pairs (from, to): a direct mapping's keys, or a term between the two ends."""
    from_link: tuple[list[str], list[str]]
    link_to: tuple[list[str], list[str]]

    @classmethod
    def of(cls, ops: FrameOps[Any], plan: RelationshipPlan) -> _Keys:
        def pairs(
            left: Role, right: Role, found: tuple[tuple[str, str], ...]
        ) -> tuple[list[str], list[str]]:
            return (
                [ops.column(plan, left, a) for a, _ in found],
                [ops.column(plan, right, b) for _, b in found],
            )

        return cls(
            pairs("from", "to", plan.from_to_keys),
            pairs("from", "link", plan.from_link_keys),
            pairs("link", "to", plan.link_to_keys),
        )

    def through(self, ops: FrameOps[F], link: F, sides: Mapping[Role, F]) -> F:
        """Each link row with every from row and to row it names."""
        (from_keys, link_from), (link_to, to_keys) = self.from_link, self.link_to
        extra_from, extra_to = self.from_to
        first = ops.join(link, link_from, sides["from"], from_keys)
        return ops.join(first, [*link_to, *extra_from], sides["to"], [*to_keys, *extra_to])

    def referring(self, ops: FrameOps[F], link: F) -> F:
        """The link rows that name both ends."""
        return ops.drop_nulls(link, [*self.from_link[1], *self.link_to[0]])


def _sides(ops: FrameOps[F], plan: RelationshipPlan, frames: Mapping[Role, Any]) -> dict[Role, F]:
    return {role: ops.side(frames[role], role, plan) for role in plan.roles}


def related_rows(ops: FrameOps[F], plan: RelationshipPlan, frames: Mapping[Role, Any]) -> F:
    """The joined rows of ``plan`` between the given rows of each side, nothing counted
    (``frames`` by role: the follower joins the rows a change touched this way)."""
    sides = _sides(ops, plan, frames)
    keys = _Keys.of(ops, plan)
    if plan.link_table is None:
        return ops.join(sides["from"], keys.from_to[0], sides["to"], keys.from_to[1])
    return keys.through(ops, keys.referring(ops, sides["link"]), sides)


def _direct(ops: FrameOps[F], sides: Mapping[Role, F], keys: _Keys) -> Related[F]:
    on: dict[Role, list[str]] = {"from": keys.from_to[0], "to": keys.from_to[1]}
    rows = ops.join(sides["from"], on["from"], sides["to"], on["to"])
    from_unique = ops.is_unique(sides["from"], on["from"])
    to_unique = ops.is_unique(sides["to"], on["to"])
    counted = counted_sides(from_unique, to_unique)
    queries: list[F] = []
    for role in counted:
        other: Role = "to" if role == "from" else "from"
        referring = ops.drop_nulls(sides[role], on[role])
        matched = ops.semi(referring, on[role], sides[other], on[other])
        queries += [sides[role], referring, matched]
    found = ops.counts(queries)
    counts = {role: SideCounts(*found[3 * i : 3 * i + 3]) for i, role in enumerate(counted)}
    return Related(rows, driving_side(from_unique, to_unique), counts)


def _through_link(ops: FrameOps[F], sides: Mapping[Role, F], keys: _Keys) -> Related[F]:
    referring = keys.referring(ops, sides["link"])
    (from_keys, link_from), (link_to, to_keys) = keys.from_link, keys.link_to
    if not keys.from_to[0]:
        rows = keys.through(ops, referring, sides)
        # A link row relates something when both its ends exist: two semi-joins, no join.
        with_from = ops.semi(referring, link_from, sides["from"], from_keys)
        matched = ops.semi(with_from, link_to, sides["to"], to_keys)
        link = SideCounts(*ops.counts([sides["link"], referring, matched]))
        return Related(rows, "link", {"link": link})
    numbered = ops.numbered(referring, LINK_ROW)
    rows = keys.through(ops, numbered, sides)
    related = ops.semi(numbered, [LINK_ROW], ops.distinct(rows, [LINK_ROW]), [LINK_ROW])
    link = SideCounts(*ops.counts([sides["link"], numbered, related]))
    return Related(rows, "link", {"link": link})


def relate(ops: FrameOps[F], plan: RelationshipPlan, frames: Mapping[Role, Any]) -> Related[F]:
    """The joined rows of ``plan`` (``frames``: each side's table by role), its driving side
    and the counts its ledger balances."""
    sides = _sides(ops, plan, frames)
    keys = _Keys.of(ops, plan)
    if plan.link_table is None:
        return _direct(ops, sides, keys)
    return _through_link(ops, sides, keys)
