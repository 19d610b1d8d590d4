-- bulk360 control database, schema version 7: the figures /metrics and the dashboard show of a
-- run. transaction_retries: the Bolt transactions the server aborted (a deadlock, a dropped
-- connection) and the driver ran again (NULL: the run wrote no Bolt); step_seconds: each step's
-- time ({"extract": 1.4, "load": 14.2, ...}).
ALTER TABLE etl_run_logs ADD COLUMN IF NOT EXISTS transaction_retries integer;
ALTER TABLE etl_run_logs ADD COLUMN IF NOT EXISTS step_seconds jsonb;
