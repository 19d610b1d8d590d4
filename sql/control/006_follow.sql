-- bulk360 control database, schema version 6: following the sources (`bulk360 follow`).

ALTER TABLE etl_run_logs DROP CONSTRAINT etl_run_logs_mode_check;
ALTER TABLE etl_run_logs ADD CONSTRAINT etl_run_logs_mode_check
    CHECK (mode IN ('admin', 'csv', 'bolt', 'sync', 'follow'));

-- One row per followed source: its slot and publication, where follow keeps its state, and how
-- far the graph holds the source's changes. The state folder's own record is the one that
-- counts after a crash; this one is for `bulk360 follow status`, /health and `bulk360 check`.
CREATE TABLE etl_follow_sources (
    source_name       text PRIMARY KEY,
    slot_name         text NOT NULL,
    publication_name  text NOT NULL,
    state_dir         text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    applied_lsn       pg_lsn,
    -- The commit time of the newest transaction applied, and when it was applied.
    applied_commit_at timestamptz,
    applied_at        timestamptz,
    -- The last time the follower found nothing left to apply up to the source's then-current
    -- position: lag in seconds is measured from it.
    caught_up_at      timestamptz,
    run_id            bigint REFERENCES etl_run_logs (run_id) ON DELETE SET NULL
);
