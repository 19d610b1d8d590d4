-- Control rows of the MovieLens sample. Run by `bulk360 sample load movielens` in the control
-- database, in a session that has a temporary table sample_target(host, port, db_user, db_prefix)
-- naming where the movielens database was created. Re-running it replaces the sample's rows; the
-- rows of other samples stay.

INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env, schema_name, description)
SELECT 'movielens', t.host, t.port, t.db_prefix || 'movielens', t.db_user, 'ETL_DB_PASSWORD', 'public',
       'MovieLens 100K: users, movies, genres and ratings (GroupLens, research use only)'
FROM sample_target AS t
ON CONFLICT (name) DO UPDATE
SET db_host = EXCLUDED.db_host, db_port = EXCLUDED.db_port, db_name = EXCLUDED.db_name,
    db_user = EXCLUDED.db_user, db_password = NULL, db_password_env = EXCLUDED.db_password_env,
    schema_name = EXCLUDED.schema_name, is_active = true, description = EXCLUDED.description;

DELETE FROM field_exclusion_rules WHERE source_name = 'movielens';
DELETE FROM node_label_mappings WHERE source_name = 'movielens';
DELETE FROM relationship_mappings WHERE description LIKE 'movielens:%';

INSERT INTO field_exclusion_rules (source_name, table_name, column_name, reason) VALUES
    ('movielens', 'users', 'zip_code', 'with age, gender and occupation it can single a person out');

INSERT INTO node_label_mappings (source_name, table_name, label, key_columns, description) VALUES
    ('movielens', 'users', 'User', NULL, 'movielens'),
    ('movielens', 'movies', 'Movie', NULL, 'movielens'),
    ('movielens', 'genres', 'Genre', NULL, 'movielens');

-- The ratings table is a link table read once for both mappings: a rating of 4 or 5 is a movie
-- the user liked (what recommendations learn from and are measured on), a lower one only rated.
INSERT INTO relationship_mappings
    (relationship_type, from_label, from_alias, to_label, to_alias, join_condition,
     link_source, link_table, link_alias, property_columns, description)
VALUES
    ('LIKED', 'User', 'u', 'Movie', 'm',
     'u.id = r.user_id AND r.movie_id = m.id AND r.rating IN (4, 5)',
     'movielens', 'ratings', 'r', '{r.rating,r.rated_at}', 'movielens: ratings of 4 and 5'),
    ('RATED', 'User', 'u', 'Movie', 'm',
     'u.id = r.user_id AND r.movie_id = m.id AND r.rating IN (1, 2, 3)',
     'movielens', 'ratings', 'r', '{r.rating,r.rated_at}', 'movielens: ratings of 1 to 3'),
    ('IN_GENRE', 'Movie', 'm', 'Genre', 'g', 'm.id = mg.movie_id AND mg.genre_id = g.id',
     'movielens', 'movie_genres', 'mg', '{}', 'movielens: a movie''s genres');
