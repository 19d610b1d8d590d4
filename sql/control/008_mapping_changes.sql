-- bulk360 control database, schema version 8: every change `bulk360 mappings apply` wrote, one
-- row per control row added, changed or removed: who (the database role and the operating
-- system user), when, from which file (its SHA-256), and the row before and after (a source's
-- stored password is never copied here).
CREATE TABLE IF NOT EXISTS mapping_changes (
    change_id     bigserial PRIMARY KEY,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    applied_by    text NOT NULL DEFAULT current_user,
    os_user       text,
    file_name     text NOT NULL,
    file_sha256   text NOT NULL,
    table_name    text NOT NULL,
    action        text NOT NULL CHECK (action IN ('added', 'changed', 'removed')),
    row_key       text NOT NULL,
    before        jsonb,
    after         jsonb
);
CREATE INDEX IF NOT EXISTS mapping_changes_applied ON mapping_changes (applied_at);
