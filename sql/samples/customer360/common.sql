-- Helpers shared by the Customer 360 sample databases, so that profiles_db and support_db
-- derive the same e-mail address from the same account number without a shared table.

-- How many times the sample's row counts (400 accounts, ~9,000 play events, 320 tickets) are
-- multiplied: 1 for the sample, 100 per benchmark scale factor (scale 1 ≈ 1.1 million rows).
-- Set by `bulk360 sample load --scale` in the session as bulk360.sample_scale.
CREATE OR REPLACE FUNCTION sample_scale() RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('bulk360.sample_scale', true), ''), '1')::integer
$$;
CREATE OR REPLACE FUNCTION sample_first_name(n int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n = 1 THEN 'John' ELSE (ARRAY[
        'Emma', 'Liam', 'Olivia', 'Noah', 'Ava', 'Elijah', 'Sophia', 'Lucas', 'Mia', 'Mateo',
        'Amelia', 'Ethan', 'Zoë', 'José', 'Chloé', 'Björn', 'Aiko', 'Priya', 'Omar', 'Fatima',
        'Wei', 'Sven', 'Nora', 'Diego'])[1 + (n * 7) % 24] END
$$;

CREATE OR REPLACE FUNCTION sample_last_name(n int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n = 1 THEN 'Smith' ELSE (ARRAY[
        'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez',
        'Martinez', 'Hernández', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor',
        'Moore', 'Jackson', 'O''Brien', 'Lee', 'Müller', 'Nakamura', 'Okafor', 'Kowalski',
        'Svensson'])[1 + (n * 13) % 25] END
$$;

CREATE OR REPLACE FUNCTION sample_email(n int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n = 1 THEN 'john.smith@email.com' ELSE
        lower(translate(sample_first_name(n), 'ëéöüáíóú', 'eeouaiou')) || '.'
        || lower(translate(replace(sample_last_name(n), '''', ''), 'ëéöüáíóú', 'eeouaiou'))
        || n || '@'
        || (ARRAY['gmail.com', 'outlook.com', 'yahoo.com', 'icloud.com', 'proton.me'])[1 + n % 5]
    END
$$;
