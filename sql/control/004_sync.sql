-- bulk360 control database, schema version 4: incremental sync (`bulk360 run --mode sync`).

ALTER TABLE etl_run_logs DROP CONSTRAINT etl_run_logs_mode_check;
ALTER TABLE etl_run_logs ADD CONSTRAINT etl_run_logs_mode_check
    CHECK (mode IN ('admin', 'csv', 'bolt', 'sync'));
-- The run whose import folder a sync compared its own with (the run that built the graph).
ALTER TABLE etl_run_logs ADD COLUMN diffed_against bigint REFERENCES etl_run_logs (run_id)
    ON DELETE SET NULL;

-- What a sync changed per label (nodes) and per relationship mapping (relationships).
ALTER TABLE etl_table_logs
    ADD COLUMN rows_inserted bigint NOT NULL DEFAULT 0,
    ADD COLUMN rows_updated bigint NOT NULL DEFAULT 0,
    ADD COLUMN rows_deleted bigint NOT NULL DEFAULT 0;
