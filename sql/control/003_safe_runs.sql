-- bulk360 control database, schema version 3: runs that are safe to leave alone.
-- Run folders that cannot collide, resume, the schema-drift gate, the per-run ledger and
-- column type overrides.

-- The identity of this control database. A run folder's manifest names it, so that several
-- control databases (or one re-created) can share an import folder without touching each
-- other's runs.
CREATE TABLE control_instance (
    instance_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    one_row     boolean NOT NULL DEFAULT true UNIQUE CHECK (one_row)
);
INSERT INTO control_instance DEFAULT VALUES;

ALTER TABLE etl_run_logs
    -- Unique across control databases; its first 8 hex digits name the run's folder.
    ADD COLUMN run_uid uuid NOT NULL DEFAULT gen_random_uuid(),
    -- The failed run this one resumed (its published import folder was loaded again).
    ADD COLUMN resumed_from bigint REFERENCES etl_run_logs (run_id) ON DELETE SET NULL,
    -- When the import folder was published, and the SHA-256 of its manifest.
    ADD COLUMN published_at timestamptz,
    ADD COLUMN manifest_sha256 text,
    -- Schema changes since the last succeeded run let through by --accept-schema-changes.
    ADD COLUMN accepted_schema_changes jsonb,
    -- Whether every label and relationship mapping balanced: read = written + rejected + ...
    ADD COLUMN ledger_balanced boolean;

ALTER TABLE etl_table_logs
    ADD COLUMN rows_duplicate bigint NOT NULL DEFAULT 0,
    -- Relationships beyond one per row: a row whose key matched several nodes.
    ADD COLUMN rows_fanout bigint NOT NULL DEFAULT 0,
    ADD COLUMN ledger_balanced boolean;

-- The columns and types of every mapped table as a succeeded run saw them: the baseline of the
-- schema-drift gate (a new column with no rule stops the next run).
CREATE TABLE etl_schema_columns (
    run_id      bigint NOT NULL REFERENCES etl_run_logs (run_id) ON DELETE CASCADE,
    source_name text NOT NULL,
    table_name  text NOT NULL,
    column_name text NOT NULL,
    type_name   text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (run_id, source_name, table_name, column_name)
);
CREATE INDEX etl_schema_columns_table ON etl_schema_columns (source_name, table_name, run_id);

-- A column's Neo4j type chosen knowingly instead of bulk360's default (e.g. double for a
-- numeric that does not fit a double exactly; values that change are counted per run).
CREATE TABLE column_type_overrides (
    override_id serial PRIMARY KEY,
    source_name text NOT NULL REFERENCES source_databases (name) ON UPDATE CASCADE ON DELETE CASCADE,
    table_name  text NOT NULL,
    column_name text NOT NULL,
    neo4j_type  text NOT NULL CHECK (neo4j_type IN ('double', 'string')),
    reason      text,
    UNIQUE (source_name, table_name, column_name)
);
