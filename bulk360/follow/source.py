"""A source followed through PostgreSQL's logical decoding: its requirements, and the
publication and the replication slot bulk360 owns there.

The publication covers exactly the mapped tables, each with a column list of the columns the
plan reads (and the replica identity's), so an excluded column never leaves PostgreSQL, not even
in the change stream. The slot uses the built-in ``pgoutput`` plugin; its changes are read over
the streaming replication protocol (:mod:`bulk360.follow.stream`), which confirms a position
only after what it holds is in Neo4j and in follow's state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from bulk360.control.config import Source
from bulk360.errors import SourceError
from bulk360.plan.tables import TablePlan
from bulk360.plan.types import SESSION_SETTINGS
from bulk360.settings import Settings

__all__ = ["ChangeSource", "Names", "SlotStatus", "follow_names", "identity_columns", "slot_status"]

_OWNER = "bulk360 follow, control database {instance}"
"""The comment bulk360 puts on its publications: which control database owns them."""


@dataclass(frozen=True)
class Names:
    """The slot and the publication of one source."""

    slot: str
    publication: str


def follow_names(instance: str, source: str) -> Names:
    """``bulk360_<8 hex digits of the control database>_<source>``: a name of its own per
    control database and source (slot names take lower-case letters, digits and ``_``)."""
    base = f"bulk360_{instance.replace('-', '')[:8]}_{re.sub(r'[^a-z0-9_]', '_', source.lower())}"
    return Names(slot=base[:63], publication=base[:63])


@dataclass(frozen=True)
class SlotStatus:
    """Where a source's slot stands (``bulk360 follow status``)."""

    source: str
    slot: str
    confirmed_lsn: str | None
    current_lsn: str
    lag_bytes: int | None
    retained_bytes: int | None
    wal_status: str | None
    """``reserved``, ``extended``, ``unreserved`` or ``lost`` (PostgreSQL's), None: no slot."""
    active: bool


class ChangeSource:
    """One source's tables, publication and slot."""

    def __init__(
        self, settings: Settings, source: Source, tables: Sequence[TablePlan], instance: str
    ) -> None:
        self.settings = settings
        self.source = source
        self.tables = list(tables)
        self.instance = instance
        self.names = follow_names(instance, source.name)

    def session(self) -> psycopg.Connection[Any]:
        """A session (autocommit) with the readers' settings: the values follow formats come
        out as a run's readers write them."""
        conn = self.source.connect(self.settings, autocommit=True)
        try:
            for name, value in SESSION_SETTINGS.items():
                conn.execute("SELECT set_config(%s, %s, false)", [name, value])
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """:meth:`session`, closed when the block ends."""
        conn = self.session()
        try:
            yield conn
        finally:
            conn.close()

    # ---- requirements ------------------------------------------------------------------

    def problems(self, conn: psycopg.Connection[Any], known: bool) -> list[str]:
        """What stops following this source, each with its fix (nothing is created).

        ``known``: follow's own state holds this source (its slot and publication exist)."""
        where = f"source '{self.source.name}' ({self.source.dbname})"
        found: list[str] = []
        version = int(_one(conn, "SHOW server_version_num"))
        if version < 150000:
            return [
                f"{where}: PostgreSQL {version // 10000} cannot publish column lists; follow needs 15 or later"
            ]
        if _one(conn, "SHOW wal_level") != "logical":
            found.append(
                f"{where}: wal_level is {_one(conn, 'SHOW wal_level')}; set wal_level = logical in "
                "postgresql.conf and restart PostgreSQL"
            )
        role = conn.execute(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not (role and role[0]):
            found.append(
                f"{where}: role {self.source.user} may not use replication slots; "
                f"ALTER ROLE {self.source.user} REPLICATION"
            )
        found += self._table_problems(conn, where)
        found += self._owned_problems(conn, where, known)
        return found

    def _table_problems(self, conn: psycopg.Connection[Any], where: str) -> list[str]:
        found = []
        for table in self.tables:
            name = f"{table.schema}.{table.table}"
            identity, owned = conn.execute(
                "SELECT c.relreplident, pg_has_role(c.relowner, 'USAGE')"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s",
                [table.schema, table.table],
            ).fetchone() or (None, False)
            columns = identity_columns(conn, table)
            if not owned:
                found.append(
                    f"{where}: table {name} belongs to another role; bulk360 creates the "
                    f"publication over it: ALTER TABLE {name} OWNER TO {self.source.user}"
                )
            if identity == "n" or (identity == "d" and not columns):
                found.append(
                    f"{where}: table {name} has no replica identity, so its updates and deletes "
                    f"cannot be followed: add a primary key, or ALTER TABLE {name} REPLICA "
                    "IDENTITY USING INDEX <a unique index>"
                )
            elif identity == "f" and table.excluded:
                found.append(
                    f"{where}: table {name} has REPLICA IDENTITY FULL, which would send its "
                    "excluded columns too: give it a primary key or a unique index as its replica "
                    "identity"
                )
            elif table.label and not set(table.key_columns) <= set(columns) and identity != "f":
                found.append(
                    f"{where}: table {name}'s replica identity ({', '.join(columns)}) does not hold "
                    f"the node key ({', '.join(table.key_columns)}) of :{table.label}: make the key "
                    "the primary key or the replica identity's index"
                )
            elif table.label and not table.key_unique:
                found.append(
                    f"{where}: the node key of :{table.label} ({', '.join(table.key_columns)}) is "
                    f"not unique in {name}: follow needs a primary key or a unique index on it"
                )
            excluded = sorted(set(columns) & set(table.excluded))
            if excluded:
                found.append(
                    f"{where}: table {name}'s replica identity holds excluded columns "
                    f"({', '.join(excluded)}), which the change stream would send"
                )
        return found

    def _owned_problems(self, conn: psycopg.Connection[Any], where: str, known: bool) -> list[str]:
        found = []
        slot = conn.execute(
            "SELECT plugin, wal_status FROM pg_replication_slots WHERE slot_name = %s",
            [self.names.slot],
        ).fetchone()
        publication = conn.execute(
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = %s",
            [self.names.publication],
        ).fetchone()
        owner = _OWNER.format(instance=self.instance)
        if publication is not None and publication[0] != owner:
            found.append(
                f"{where}: publication {self.names.publication} exists and belongs to "
                f"{publication[0] or 'nobody bulk360 knows'}; drop it, or follow from that control database"
            )
        elif publication is not None and known:
            wanted, actual = self.wanted(conn), self.published(conn)
            if wanted != actual:
                found.append(
                    f"{where}: publication {self.names.publication} was changed ({_difference(wanted, actual)}): "
                    "bulk360 follow stop --drop, then bulk360 follow to start again"
                )
        if not known and (slot is not None or publication is not None):
            found.append(
                f"{where}: {'slot' if slot else 'publication'} {self.names.slot} exists but this "
                "control database's follow state does not know it (left by a follower whose state "
                "was removed): bulk360 follow --clear starts again from the sources"
            )
        if known and slot is not None and slot[1] == "lost":
            found.append(
                f"{where}: slot {self.names.slot} was invalidated (the source removed WAL it "
                "needed: max_slot_wal_keep_size): bulk360 follow --clear starts again from the sources"
            )
        if known and slot is None:
            found.append(
                f"{where}: slot {self.names.slot} is gone (dropped, or invalidated by "
                "max_slot_wal_keep_size): bulk360 follow --clear starts again from the sources"
            )
        return found

    # ---- the publication and the slot --------------------------------------------------

    def wanted(self, conn: psycopg.Connection[Any]) -> dict[str, tuple[str, ...]]:
        """``schema.table`` → the columns the publication must send, sorted."""
        return {
            f"{t.schema}.{t.table}": tuple(
                sorted({*(c.name for c in t.columns), *identity_columns(conn, t)})
            )
            for t in self.tables
        }

    def published(self, conn: psycopg.Connection[Any]) -> dict[str, tuple[str, ...]]:
        rows = conn.execute(
            "SELECT schemaname, tablename, attnames FROM pg_publication_tables WHERE pubname = %s",
            [self.names.publication],
        ).fetchall()
        return {f"{s}.{t}": tuple(sorted(columns or ())) for s, t, columns in rows}

    def create(self, conn: psycopg.Connection[Any]) -> None:
        """The publication over exactly the mapped tables and their columns."""
        wanted = self.wanted(conn)
        tables = sql.SQL(", ").join(
            sql.SQL("{} ({})").format(
                sql.Identifier(*name.split(".", 1)),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
            for name, columns in wanted.items()
        )
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})").format(
                    sql.Identifier(self.names.publication),
                    tables,
                    sql.Literal("insert, update, delete, truncate"),
                )
            )
            conn.execute(
                sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(
                    sql.Identifier(self.names.publication),
                    sql.Literal(_OWNER.format(instance=self.instance)),
                )
            )

    @contextmanager
    def new_slot(self) -> Iterator[tuple[str, str]]:
        """Create the slot; yields its consistent point and the name of the snapshot it
        exported, valid until the block ends (the replication session stays idle till then)."""
        info = self.source.conninfo(self.settings)
        try:
            conn = psycopg.connect(**info, replication="database", autocommit=True)
        except psycopg.OperationalError as exc:
            raise SourceError(
                f"source '{self.source.name}': cannot open a replication session: {exc}"
            ) from None
        try:
            row = conn.execute(
                sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')").format(
                    sql.Identifier(self.names.slot)
                )
            ).fetchone()
            assert row is not None
            yield str(row[1]), str(row[2])
        finally:
            conn.close()

    def drop(self, conn: psycopg.Connection[Any]) -> list[str]:
        """Remove the slot and the publication; what was removed."""
        removed = []
        if conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [self.names.slot],
        ).fetchall():
            removed.append(f"slot {self.names.slot}")
        exists = conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", [self.names.publication]
        ).fetchone()
        if exists:
            conn.execute(
                sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(self.names.publication))
            )
            removed.append(f"publication {self.names.publication}")
        return removed

    def status(self, conn: psycopg.Connection[Any]) -> SlotStatus:
        return slot_status(conn, self.source.name, self.names.slot)


def slot_status(conn: psycopg.Connection[Any], source: str, slot: str) -> SlotStatus:
    """Where ``slot`` stands in the database ``conn`` is connected to."""
    current = _one(conn, "SELECT pg_current_wal_lsn()::text")
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn),"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), wal_status, active"
        " FROM pg_replication_slots WHERE slot_name = %s",
        [slot],
    ).fetchone()
    if row is None:
        return SlotStatus(source, slot, None, current, None, None, None, False)
    lag, retained = (int(v) if v is not None else None for v in row[1:3])
    return SlotStatus(source, slot, row[0], current, lag, retained, row[3], bool(row[4]))


def identity_columns(conn: psycopg.Connection[Any], table: TablePlan) -> tuple[str, ...]:
    """The columns of ``table``'s replica identity (all columns for FULL, none for NOTHING)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_index i ON i.indrelid = c.oid"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
        " WHERE n.nspname = %s AND c.relname = %s AND ("
        "  (c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))"
        " ORDER BY array_position(i.indkey, a.attnum)",
        [table.schema, table.table],
    ).fetchall()
    if rows:
        return tuple(r[0] for r in rows)
    full = conn.execute(
        "SELECT c.relreplident = 'f' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        [table.schema, table.table],
    ).fetchone()
    return tuple(name for name, _ in table.catalog_columns) if full and full[0] else ()


def _one(conn: psycopg.Connection[Any], query: LiteralString) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _difference(wanted: dict[str, tuple[str, ...]], actual: dict[str, tuple[str, ...]]) -> str:
    parts = []
    for name in sorted(wanted.keys() | actual.keys()):
        if name not in actual:
            parts.append(f"{name} missing")
        elif name not in wanted:
            parts.append(f"{name} added")
        elif wanted[name] != actual[name]:
            parts.append(
                f"{name} columns {', '.join(actual[name])} instead of {', '.join(wanted[name])}"
            )
    return "; ".join(parts)
