-- streaming_db: the catalogue and every play event (Customer 360 sample).
SELECT setseed(0.17);

CREATE TABLE media (
    media_id         integer PRIMARY KEY,
    title            text NOT NULL,
    genre            text NOT NULL,
    media_type       text NOT NULL,
    release_date     date,
    duration_minutes integer,
    rating           numeric(3, 1),
    languages        text[],
    is_original      boolean NOT NULL
);
INSERT INTO media
SELECT n,
       (ARRAY['The', 'A', 'Last', 'Silent', 'Midnight', 'Golden', 'Broken', 'Hidden', 'Wild', 'Northern'])[1 + n % 10]
           || ' ' || (ARRAY['River', 'Empire', 'Signal', 'Garden', 'Heist', 'Orbit', 'Harbor', 'Crown',
                            'Frontier', 'Echo', 'Kingdom', 'Storm', 'Café'])[1 + (n * 7) % 13]
           || CASE WHEN n > 130 THEN ' ' || (n / 10) ELSE '' END,
       (ARRAY['Drama', 'Comedy', 'Action', 'Documentary', 'Sci-Fi', 'Thriller', 'Animation', 'Romance'])[1 + (n * 3) % 8],
       (ARRAY['movie', 'series', 'movie', 'documentary'])[1 + n % 4],
       date '1995-01-01' + (random() * 11000)::int,
       CASE WHEN n % 4 = 1 THEN 22 + (random() * 40)::int ELSE 80 + (random() * 80)::int END,
       round((5 + random() * 4.8)::numeric, 1),
       CASE n % 5 WHEN 0 THEN '{en}'::text[] WHEN 1 THEN '{en,es}' WHEN 2 THEN '{en,de,fr}' WHEN 3 THEN '{ja,en}' END,
       n % 6 = 0
FROM generate_series(1, 150 * sample_scale()) AS n;

CREATE TABLE play_events (
    event_id           bigint PRIMARY KEY,
    account_id         integer NOT NULL,   -- an account of profiles_db (another database)
    media_id           integer NOT NULL REFERENCES media,
    action             text NOT NULL,
    event_timestamp    timestamptz NOT NULL,
    device_fingerprint text,
    ip_address         inet,
    position_seconds   integer,
    session_id         uuid
);
-- Skewed: a few heavy streamers, a long tail; more events in recent months. Two client
-- generations log actions differently ('play'/'stop' and 'START'/'FINISH').
INSERT INTO play_events
SELECT n,
       account_id,
       1 + floor(150 * sample_scale() * power(random(), 1.8))::int,
       CASE WHEN r < 0.40 THEN (ARRAY['play', 'START'])[1 + account_id % 2]
            WHEN r < 0.55 THEN 'pause'
            WHEN r < 0.85 THEN (ARRAY['stop', 'FINISH'])[1 + account_id % 2]
            ELSE 'seek' END,
       -- days back skewed to recent months; hours skewed to the evening (UTC)
       timestamptz '2025-11-02 00:00:00+00' - floor(power(random(), 1.6) * 365) * interval '1 day'
           + (CASE WHEN random() < 0.6 THEN 17 + floor(random() * 7) ELSE floor(random() * 24) END) * interval '1 hour'
           + random() * interval '59 minutes',
       'dev_' || lpad(((account_id * 3 + (random() * 2)::int) % 90)::text, 3, '0'),
       ('10.' || (account_id % 250) || '.' || (n % 250) || '.' || (1 + n % 200))::inet,
       (random() * 7200)::int,
       md5('session-' || account_id || '-' || (n / 4))::uuid
FROM (SELECT n, 2 + floor((400 * sample_scale() - 1) * power(random(), 2.2))::int AS account_id,
             random() AS r
      FROM generate_series(1, 9000 * sample_scale()) AS n) AS e;
-- John streams every week, also in the last month.
INSERT INTO play_events
SELECT 20000 * sample_scale() + k, 1, 1 + (k * 7) % 40, (ARRAY['play', 'stop'])[1 + k % 2],
       timestamptz '2025-10-30 21:00:00+00' - k * interval '2 days 3 hours',
       'dev_john_tv', '192.168.1.20', k * 60, md5('john-' || (k / 2))::uuid
FROM generate_series(1, 60) AS k;
-- Events from accounts that profiles_db does not know: orphans for WATCHED.
INSERT INTO play_events VALUES
    (30000 * sample_scale() + 1, 5000 * sample_scale() + 1, 3, 'play', timestamptz '2025-10-01 10:00:00+00', 'dev_unknown', '203.0.113.9', 0, NULL),
    (30000 * sample_scale() + 2, 5000 * sample_scale() + 1, 3, 'stop', timestamptz '2025-10-01 10:42:00+00', 'dev_unknown', '203.0.113.9', 2520, NULL),
    (30000 * sample_scale() + 3, 5000 * sample_scale() + 2, 9, 'START', timestamptz '2025-09-12 18:30:00+00', NULL, NULL, NULL, NULL);
