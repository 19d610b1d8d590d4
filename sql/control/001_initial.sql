-- bulk360 control database, schema version 1.
-- Applied by `bulk360 init`, which records each applied file in schema_migrations.

CREATE TABLE source_databases (
    source_id       serial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    db_host         text NOT NULL,
    db_port         integer NOT NULL DEFAULT 5432 CHECK (db_port BETWEEN 1 AND 65535),
    db_name         text NOT NULL,
    db_user         text NOT NULL,
    -- Either a stored password (discouraged) or the name of an environment variable holding it.
    db_password     text,
    db_password_env text,
    schema_name     text NOT NULL DEFAULT 'public',
    is_active       boolean NOT NULL DEFAULT true,
    description     text,
    CHECK (db_password IS NULL OR db_password_env IS NULL)
);

CREATE TABLE field_exclusion_rules (
    rule_id     serial PRIMARY KEY,
    source_name text NOT NULL REFERENCES source_databases (name) ON UPDATE CASCADE ON DELETE CASCADE,
    table_name  text NOT NULL,
    column_name text NOT NULL,
    is_excluded boolean NOT NULL DEFAULT true,
    reason      text,
    UNIQUE (source_name, table_name, column_name)
);

CREATE TABLE node_label_mappings (
    mapping_id  serial PRIMARY KEY,
    source_name text NOT NULL REFERENCES source_databases (name) ON UPDATE CASCADE ON DELETE CASCADE,
    table_name  text NOT NULL,
    label       text NOT NULL,
    -- NULL means the table's primary key; several columns make a composite key.
    key_columns text[],
    is_active   boolean NOT NULL DEFAULT true,
    description text
);
-- One id space per label: a label comes from one active table.
CREATE UNIQUE INDEX node_label_mappings_active_label ON node_label_mappings (label) WHERE is_active;

CREATE TABLE relationship_mappings (
    mapping_id        serial PRIMARY KEY,
    relationship_type text NOT NULL,
    from_label        text NOT NULL,
    from_alias        text NOT NULL,
    to_label          text NOT NULL,
    to_alias          text NOT NULL,
    -- Equalities of alias.column joined by AND, e.g. 'a.account_id = pm.account_id'.
    join_condition    text NOT NULL,
    -- Optional link table for many-to-many relationships, bound to link_alias.
    link_source       text REFERENCES source_databases (name) ON UPDATE CASCADE ON DELETE CASCADE,
    link_table        text,
    link_alias        text,
    -- Relationship properties, each 'alias.column' (usually of the link table).
    property_columns  text[] NOT NULL DEFAULT '{}',
    is_active         boolean NOT NULL DEFAULT true,
    description       text,
    CHECK ((link_table IS NULL) = (link_alias IS NULL) AND (link_table IS NULL) = (link_source IS NULL))
);

CREATE TABLE etl_run_logs (
    run_id              bigserial PRIMARY KEY,
    mode                text NOT NULL CHECK (mode IN ('admin', 'csv', 'bolt')),
    status              text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    nodes_written       bigint,
    relationships_written bigint,
    rows_read           bigint,
    rows_rejected       bigint,
    rows_orphaned       bigint,
    bytes_written       bigint,
    import_dir          text,
    options             jsonb NOT NULL DEFAULT '{}',
    bulk360_version     text,
    error_text          text
);

CREATE TABLE etl_table_logs (
    log_id            bigserial PRIMARY KEY,
    run_id            bigint NOT NULL REFERENCES etl_run_logs (run_id) ON DELETE CASCADE,
    -- 'node' (a table mapped to a label), 'table' (read only for relationships), 'relationship'
    object_kind       text NOT NULL CHECK (object_kind IN ('node', 'table', 'relationship')),
    source_name       text,
    table_name        text,
    label             text,
    relationship_type text,
    mapping_id        integer,
    status            text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    rows_processed    bigint NOT NULL DEFAULT 0,
    rows_written      bigint NOT NULL DEFAULT 0,
    rows_rejected     bigint NOT NULL DEFAULT 0,
    rows_orphaned     bigint NOT NULL DEFAULT 0,
    bytes             bigint NOT NULL DEFAULT 0,
    seconds           double precision NOT NULL DEFAULT 0,
    error_text        text,
    details           jsonb NOT NULL DEFAULT '{}',
    logged_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX etl_table_logs_run ON etl_table_logs (run_id);

-- What each run produced (the old design's cypher_scripts).
CREATE TABLE run_artifacts (
    artifact_id   bigserial PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES etl_run_logs (run_id) ON DELETE CASCADE,
    kind          text NOT NULL,
    path          text NOT NULL,
    checksum      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_run_time timestamptz
);
