-- bulk360 control database, schema version 5: a run stopped by an unexpected error (a bug) keeps
-- its traceback, so that the command line can say one line and point here.
ALTER TABLE etl_run_logs ADD COLUMN traceback text;
