-- bulk360 control database, schema version 12: A/B experiments over the recommendation
-- strategies. Each served list has an id; the shop reports what customers saw and did with it.

CREATE TABLE experiments (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    starts_at   timestamptz NOT NULL DEFAULT now(),
    -- NULL: runs until ended by hand.
    ends_at     timestamptz CHECK (ends_at > starts_at),
    created_by  text NOT NULL DEFAULT current_user,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The arms in their order; a customer's arm is where the hash of (experiment, customer) falls
-- on the cumulative shares.
CREATE TABLE experiment_arms (
    experiment  text NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
    position    integer NOT NULL,
    arm         text NOT NULL CHECK (arm ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    strategy    text NOT NULL,
    share       double precision NOT NULL CHECK (share > 0),
    PRIMARY KEY (experiment, arm),
    UNIQUE (experiment, position)
);

-- Every list the API served, under the id the shop reports events against.
CREATE TABLE served_recommendations (
    recommendation_id uuid PRIMARY KEY,
    customer_key      text NOT NULL,
    strategy          text NOT NULL,
    source            text NOT NULL CHECK (source IN ('stored', 'live')),
    rec_run_id        bigint,
    experiment        text REFERENCES experiments (name) ON DELETE CASCADE,
    arm               text,
    products          text[] NOT NULL,
    served_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((experiment IS NULL) = (arm IS NULL))
);
CREATE INDEX served_recommendations_experiment ON served_recommendations (experiment, arm);

-- What the customer did with a served list; the event id makes a repeated report harmless.
CREATE TABLE recommendation_events (
    event_id          uuid PRIMARY KEY,
    recommendation_id uuid NOT NULL
        REFERENCES served_recommendations (recommendation_id) ON DELETE CASCADE,
    kind              text NOT NULL
        CHECK (kind IN ('impression', 'click', 'add_to_cart', 'purchase')),
    product_key       text NOT NULL,
    -- The order's value, for purchases only.
    amount            numeric(14, 2) CHECK (amount >= 0),
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'purchase') = (amount IS NOT NULL))
);
CREATE INDEX recommendation_events_list ON recommendation_events (recommendation_id);
