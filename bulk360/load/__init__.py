"""Stage 3: loading the import folder into Neo4j (admin mode: the real neo4j-admin)."""

from bulk360.load.admin import AdminImport, AdminLoader

__all__ = ["AdminImport", "AdminLoader"]
