"""The control database: the configuration rows that drive a run (:mod:`.config`), the audit
rows each run writes (:mod:`.runlog`) and the ledger it balances (:mod:`.ledger`), and the run
history (:mod:`.history`). Its schema is ``sql/control/`` (:mod:`.database`).
"""

from __future__ import annotations

from bulk360.control.config import (
    ControlConfig,
    ExclusionRule,
    NodeMapping,
    RelationshipMapping,
    SchemaBaseline,
    Source,
    TypeOverride,
    load_config,
)
from bulk360.control.database import connect_control, init_schema, sql_dir
from bulk360.control.history import failed_since, find_run, graph_run, list_runs, show_run
from bulk360.control.runlog import RunLog

__all__ = [
    "ControlConfig",
    "ExclusionRule",
    "NodeMapping",
    "RelationshipMapping",
    "RunLog",
    "SchemaBaseline",
    "Source",
    "TypeOverride",
    "connect_control",
    "failed_since",
    "find_run",
    "graph_run",
    "init_schema",
    "list_runs",
    "load_config",
    "show_run",
    "sql_dir",
]
