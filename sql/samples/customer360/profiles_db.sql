-- profiles_db: accounts, plans, payment methods and subscriptions (Customer 360 sample).
SELECT setseed(0.42);

CREATE TABLE plans (
    plan_id     integer PRIMARY KEY,
    plan_name   text NOT NULL,
    monthly_fee numeric(6, 2) NOT NULL,
    max_devices integer NOT NULL,
    features    text[] NOT NULL DEFAULT '{}'
);
INSERT INTO plans VALUES
    (1, 'Basic', 8.99, 1, '{SD}'),
    (2, 'Standard', 13.99, 2, '{HD,downloads}'),
    (3, 'Premium', 17.99, 4, '{4K,HDR,downloads}'),
    (4, 'Family', 22.99, 6, '{4K,HDR,downloads,profiles}');

CREATE TABLE accounts (
    account_id       integer PRIMARY KEY,
    email            text NOT NULL UNIQUE,
    full_name        text NOT NULL,
    hashed_password  text NOT NULL,
    created_at       timestamptz NOT NULL,
    country          char(2),
    date_of_birth    date,
    is_verified      boolean NOT NULL DEFAULT false,
    marketing_opt_in boolean
);
INSERT INTO accounts
SELECT n,
       sample_email(n),
       sample_first_name(n) || ' ' || sample_last_name(n),
       encode(sha256(('not-a-real-password-' || n)::bytea), 'hex'),
       timestamptz '2023-01-01 00:00:00+00' + (random() * 900) * interval '1 day',
       (ARRAY['US', 'GB', 'DE', 'FR', 'SE', 'JP', 'IN', 'BR', 'NG', 'PL'])[1 + n % 10],
       date '1950-01-01' + (random() * 20000)::int,
       random() < 0.85,
       CASE WHEN n % 7 = 0 THEN NULL ELSE random() < 0.4 END
FROM generate_series(1, 400 * sample_scale()) AS n;
UPDATE accounts SET created_at = timestamptz '2023-03-14 09:26:53+00' WHERE account_id = 1;

CREATE TABLE payment_methods (
    payment_method_id integer PRIMARY KEY,
    account_id        integer NOT NULL,   -- no foreign key: the legacy billing import allowed strays
    card_type         text NOT NULL,
    card_last_four    char(4) NOT NULL,
    card_fingerprint  text NOT NULL,
    expires_on        date NOT NULL,
    is_default        boolean NOT NULL,
    added_at          timestamptz NOT NULL
);
INSERT INTO payment_methods
SELECT row_number() OVER (ORDER BY a.account_id, k),
       a.account_id,
       (ARRAY['Visa', 'Mastercard', 'Amex', 'Discover'])[1 + (a.account_id + k) % 4],
       lpad(((a.account_id::bigint * 7919 + k * 104729) % 10000)::text, 4, '0'),
       'fp_' || substr(md5('card-' || a.account_id || '-' || k), 1, 16),
       date '2026-01-01' + (random() * 1400)::int,
       k = 1,
       a.created_at + (random() * 30) * interval '1 day'
FROM accounts a
CROSS JOIN generate_series(1, 2) AS k
WHERE k = 1 OR a.account_id % 4 = 0;
-- A few cards used by several accounts: what fraud analysts look for.
UPDATE payment_methods SET card_fingerprint = 'fp_shared_ring_a' WHERE account_id IN (3, 17) AND is_default;
UPDATE payment_methods SET card_fingerprint = 'fp_shared_ring_b' WHERE account_id IN (25, 26, 140) AND is_default;
UPDATE payment_methods SET card_fingerprint = 'fp_shared_ring_c', card_last_four = '0427'
    WHERE account_id IN (1, 222) AND is_default;
-- At scale, rings of three neighbouring accounts share one card, about one account in ninety.
UPDATE payment_methods SET card_fingerprint = 'fp_ring_' || (account_id / 3)
    WHERE sample_scale() > 1 AND is_default AND account_id > 400 AND (account_id / 3) % 30 = 0;
-- A stray card whose account was deleted: an orphan for HAS_PAYMENT_METHOD.
INSERT INTO payment_methods VALUES
    (9000 * sample_scale() + 1, 4242 * sample_scale(), 'Visa', '0007', 'fp_orphan_card', date '2027-05-31', true, timestamptz '2024-02-02 12:00:00+00');

CREATE TABLE subscriptions (
    subscription_id integer PRIMARY KEY,
    account_id      integer NOT NULL REFERENCES accounts,
    plan_id         integer NOT NULL REFERENCES plans,
    status          text NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    auto_renew      boolean NOT NULL,
    billing_cycle   interval NOT NULL
);
-- The current subscription of every account; status spelled as the old systems did.
INSERT INTO subscriptions
SELECT a.account_id,
       a.account_id,
       CASE WHEN r < 0.35 THEN 1 WHEN r < 0.70 THEN 2 WHEN r < 0.90 THEN 3 ELSE 4 END,
       (ARRAY['active', 'active', 'active', 'Active', 'Active', 'active', 'cancelled', 'paused',
              'past_due', 'active'])[1 + a.account_id % 10],
       a.created_at + interval '1 day',
       CASE WHEN a.account_id % 10 = 6 THEN a.created_at + (60 + random() * 300) * interval '1 day' END,
       a.account_id % 10 <> 6,
       CASE WHEN a.account_id % 9 = 0 THEN interval '1 year' ELSE interval '1 month' END
FROM (SELECT *, random() AS r FROM accounts) AS a;
UPDATE subscriptions SET plan_id = 3, status = 'active' WHERE account_id = 1;
-- Older, ended subscriptions of some long-time customers.
INSERT INTO subscriptions
SELECT 1000 * sample_scale() + a.account_id, a.account_id, 1, 'cancelled',
       a.created_at - interval '200 days', a.created_at - interval '20 days', false, interval '1 month'
FROM accounts a WHERE a.account_id % 8 = 0;
