-- bulk360 control database, schema version 2: recommendation lists computed by
-- `bulk360 recommend` and served by `bulk360 serve`.

CREATE TABLE recommendation_runs (
    rec_run_id    bigserial PRIMARY KEY,
    -- The newest succeeded ETL run when the lists were computed (the graph they come from).
    etl_run_id    bigint REFERENCES etl_run_logs (run_id) ON DELETE SET NULL,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    strategies    text[] NOT NULL,
    top_n         integer NOT NULL,
    customers     integer,
    -- Weights, labels, seed; and per strategy the offline hit rate of the held-out last purchase.
    parameters    jsonb NOT NULL DEFAULT '{}',
    quality       jsonb NOT NULL DEFAULT '{}',
    error_text    text
);

CREATE TABLE recommendations (
    rec_run_id   bigint NOT NULL REFERENCES recommendation_runs (rec_run_id) ON DELETE CASCADE,
    strategy     text NOT NULL,
    customer_key text NOT NULL,
    rank         integer NOT NULL,
    product_key  text NOT NULL,
    score        double precision NOT NULL,
    -- true when the item comes from the cold-start list (no or too little history).
    cold_start   boolean NOT NULL,
    PRIMARY KEY (rec_run_id, strategy, customer_key, rank)
);
CREATE INDEX recommendations_customer ON recommendations (customer_key, strategy, rec_run_id);
