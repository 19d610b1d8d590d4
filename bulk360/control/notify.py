"""What changed, told to whoever listens: PostgreSQL ``NOTIFY`` on the control database.

The API's cache (:mod:`bulk360.serve.cache`) listens on :data:`CHANNEL`. A recommendation run
that succeeds says ``recommendations``; a run or a follow window that wrote the graph says
``graph`` with the keys it touched per label (the ends of relationships written or removed),
``null`` for a label touched as a whole (nodes deleted), or ``null`` for the whole graph (a
rebuild). Nodes whose properties changed are not named: no recommendation list depends on
them. A notification is delivered when its transaction commits; its payload holds at most
:data:`MAX_PAYLOAD` bytes, so many keys of a label become the label.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import psycopg

from bulk360.control.database import connect_control
from bulk360.errors import Bulk360Error
from bulk360.settings import Settings

__all__ = ["CHANNEL", "MAX_PAYLOAD", "Touched", "announce", "notify", "payload", "tell_cache"]

CHANNEL = "bulk360_changes"
MAX_PAYLOAD = 7000
"""PostgreSQL refuses payloads of 8000 bytes and more."""

Touched = Mapping[str, frozenset[str] | None] | None
"""Per label the keys (as text) touched, ``None`` for all its nodes; ``None``: the whole graph."""

Kind = Literal["graph", "recommendations"]


def payload(kind: Kind, touched: Touched = None) -> str:
    """The notification's JSON; the labels with the most keys become whole labels until it
    fits."""
    labels: dict[str, list[str] | None] | None = (
        None
        if touched is None
        else {label: None if keys is None else sorted(keys) for label, keys in touched.items()}
    )
    while True:
        text = json.dumps({"kind": kind, "labels": labels}, separators=(",", ":"))
        if len(text.encode()) <= MAX_PAYLOAD:
            return text
        assert labels is not None  # {"kind": ..., "labels": null} always fits
        named = labels
        widest = max(named, key=lambda label: len(named[label] or ()))
        if named[widest] is None:  # every label whole and still too long: the whole graph
            labels = None
        else:
            named[widest] = None


def notify(conn: psycopg.Connection[Any], kind: Kind, touched: Touched = None) -> None:
    """Queue the notification on ``conn``: sent when its transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload(kind, touched)])


def announce(settings: Settings, kind: Kind, touched: Touched = None) -> None:
    """Send the notification now, on its own connection."""
    with connect_control(settings) as conn:
        notify(conn, kind, touched)


def tell_cache(settings: Settings, touched: Touched) -> str | None:
    """Tell the API's cache what a run's load changed (nothing when it changed nothing); a
    failure to tell is a line for the user, not an error: the graph is written, and cached
    lists expire anyway."""
    if touched == {}:
        return None
    try:
        announce(settings, "graph", touched)
    except Bulk360Error as exc:
        return f"the API's cache was not told of this run's changes: {exc}"
    return None
