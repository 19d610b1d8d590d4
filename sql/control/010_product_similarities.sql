-- bulk360 control database, schema version 10: each product's nearest products by its node2vec
-- vector, stored by a recommendation run with the node2vec strategy (GET /products/{id}/similar).
CREATE TABLE IF NOT EXISTS product_similarities (
    rec_run_id  bigint NOT NULL REFERENCES recommendation_runs (rec_run_id) ON DELETE CASCADE,
    product_key text NOT NULL,
    rank        integer NOT NULL,
    similar_key text NOT NULL,
    score       double precision NOT NULL,
    PRIMARY KEY (rec_run_id, product_key, rank)
);
CREATE INDEX IF NOT EXISTS product_similarities_product ON product_similarities (product_key, rec_run_id);
