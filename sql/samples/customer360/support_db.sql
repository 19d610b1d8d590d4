-- support_db: the legacy help desk, which knows customers only by e-mail (Customer 360 sample).
SELECT setseed(0.73);

CREATE TABLE tickets (
    ticket_id      integer PRIMARY KEY,
    customer_email text,
    subject        text NOT NULL,
    body           text,
    status         text NOT NULL,
    priority       text NOT NULL,
    created_at     timestamptz NOT NULL,
    resolved_at    timestamptz,
    satisfaction   smallint
);
INSERT INTO tickets
SELECT n,
       sample_email(2 + floor((400 * sample_scale() - 1) * power(random(), 1.5))::int),
       (ARRAY['Video keeps buffering', 'Charged twice this month', 'Cannot log in', 'App crashes on start',
              'Subtitles out of sync', 'Update my card', 'Request a refund', 'Add a second screen',
              'Audio missing on TV', 'Password reset link expired'])[1 + n % 10],
       (ARRAY[E'Hi,\nthe "Playback" stops after 5 minutes, every time.\nThanks — Zoë',
              'Billing shows 2 charges, one of them "pending", please check.',
              E'Tried resetting twice; still locked out.\r\nCafé Wi-Fi, 3 devices ☕',
              NULL,
              'Subtitles are 2s late on episode 4, season "2".'])[1 + n % 5],
       (ARRAY['open', 'closed', 'closed', 'pending', 'closed'])[1 + (n * 3) % 5],
       (ARRAY['low', 'medium', 'medium', 'high', 'urgent'])[1 + (n * 7) % 5],
       timestamptz '2025-11-02 12:00:00+00' - power(random(), 1.3) * interval '400 days',
       NULL,
       CASE WHEN n % 3 = 0 THEN 1 + (n % 5) END
FROM generate_series(1, 320 * sample_scale()) AS n;
UPDATE tickets SET resolved_at = created_at + (1 + random() * 96) * interval '1 hour' WHERE status = 'closed';
-- John's own history with the help desk.
UPDATE tickets SET customer_email = 'john.smith@email.com', subject = 'Video keeps buffering',
       created_at = timestamptz '2025-10-20 19:12:00+00'
WHERE ticket_id IN (10, 11);
UPDATE tickets SET customer_email = 'john.smith@email.com', subject = 'Charged twice this month'
WHERE ticket_id = 21;
-- Tickets from people with no account (or no address): orphans for SUBMITTED.
INSERT INTO tickets VALUES
    (900 * sample_scale() + 1, 'ghost.user@unknown.example', 'Is there a student discount?', NULL, 'open', 'low',
     timestamptz '2025-08-08 08:08:08+00', NULL, NULL),
    (900 * sample_scale() + 2, 'former.customer@oldmail.example', 'Delete my data', 'Under GDPR, please.', 'closed', 'high',
     timestamptz '2025-06-01 10:00:00+00', timestamptz '2025-06-03 10:00:00+00', 5),
    (900 * sample_scale() + 3, NULL, 'Phone call, no e-mail given', NULL, 'closed', 'low',
     timestamptz '2025-07-15 15:30:00+00', timestamptz '2025-07-15 16:00:00+00', NULL);
-- At scale, about one ticket in a hundred comes from an address that no account has.
INSERT INTO tickets (ticket_id, customer_email, subject, status, priority, created_at)
SELECT 950 * sample_scale() + n, 'visitor' || n || '@unknown.example', 'Question before signing up',
       'open', 'low', timestamptz '2025-11-02 12:00:00+00' - (n % 700) * interval '1 day'
FROM generate_series(1, 3 * (sample_scale() - 1)) AS n;

CREATE TABLE tags (
    tag_id   integer PRIMARY KEY,
    tag_name text NOT NULL UNIQUE
);
INSERT INTO tags VALUES
    (1, 'Technical'), (2, 'Playback'), (3, 'Billing'), (4, 'Account'), (5, 'Login'),
    (6, 'Feature Request'), (7, 'Refund'), (8, 'Device');

CREATE TABLE ticket_tag_links (
    ticket_id integer NOT NULL,
    tag_id    integer NOT NULL,
    tagged_at timestamptz NOT NULL,
    tagged_by text NOT NULL,
    PRIMARY KEY (ticket_id, tag_id)
);
-- Every ticket gets the tag its subject implies, and sometimes one or two more.
INSERT INTO ticket_tag_links
SELECT DISTINCT ON (ticket_id, tag_id) * FROM (
SELECT t.ticket_id, g.tag_id, t.created_at + interval '10 minutes' AS tagged_at,
       (ARRAY['triage-bot', 'agent.lee', 'agent.nakamura'])[1 + (t.ticket_id + g.tag_id) % 3] AS tagged_by
FROM tickets t
JOIN tags g ON g.tag_id = CASE
        WHEN t.subject IN ('Video keeps buffering', 'Subtitles out of sync', 'Audio missing on TV') THEN 2
        WHEN t.subject IN ('Charged twice this month', 'Update my card') THEN 3
        WHEN t.subject IN ('Cannot log in', 'Password reset link expired') THEN 5
        WHEN t.subject = 'Request a refund' THEN 7
        WHEN t.subject = 'App crashes on start' THEN 1
        ELSE 6 END
UNION ALL
SELECT t.ticket_id, 1 + (t.ticket_id * 5) % 8, t.created_at + interval '1 hour', 'agent.lee'
FROM tickets t WHERE t.ticket_id % 3 = 0
UNION ALL
SELECT t.ticket_id, 1, t.created_at + interval '2 hours', 'agent.nakamura'
FROM tickets t WHERE t.subject IN ('Video keeps buffering', 'Audio missing on TV', 'App crashes on start')
) AS links
ORDER BY ticket_id, tag_id, tagged_at;
-- A link whose ticket was purged: an orphan for TAGGED_WITH.
INSERT INTO ticket_tag_links VALUES (99999 * sample_scale(), 2, timestamptz '2024-01-01 00:00:00+00', 'import');
