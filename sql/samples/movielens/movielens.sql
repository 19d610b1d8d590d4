-- movielens: MovieLens 100K (GroupLens, University of Minnesota; F. Maxwell Harper and Joseph A.
-- Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015): 943 users,
-- 1,682 movies, 19 genres and 100,000 ratings from 1 to 5, made between September 1997 and
-- April 1998. The raw rows are in the temporary tables ml_users, ml_items and ml_ratings
-- (see dataset.toml); this script only types and normalises them.

CREATE TABLE users (
    id         integer PRIMARY KEY,
    age        integer NOT NULL,
    gender     text NOT NULL,
    occupation text NOT NULL,
    zip_code   text NOT NULL
);
INSERT INTO users
SELECT user_id::integer, age::integer, gender, occupation, zip_code FROM ml_users;

CREATE TABLE movies (
    id           integer PRIMARY KEY,
    title        text NOT NULL,
    release_year integer
);
-- Two movies have no year as published (267 is 'unkonwn', 1412's is 'V'): NULL, not a guess.
INSERT INTO movies
SELECT item_id::integer, movie_title,
       CASE WHEN release_year ~ '^[0-9]{4}$' THEN release_year::integer END
FROM ml_items;

-- The genres are space-separated tokens of each movie's class ("Children's", "Film-Noir", ...).
CREATE TABLE genres (
    id   integer PRIMARY KEY,
    name text NOT NULL UNIQUE
);
INSERT INTO genres
SELECT row_number() OVER (ORDER BY name), name
FROM (SELECT DISTINCT unnest(string_to_array(class, ' ')) AS name FROM ml_items) AS g
WHERE name <> '';

CREATE TABLE movie_genres (
    movie_id integer NOT NULL REFERENCES movies,
    genre_id integer NOT NULL REFERENCES genres,
    PRIMARY KEY (movie_id, genre_id)
);
INSERT INTO movie_genres
SELECT DISTINCT i.item_id::integer, g.id
FROM ml_items AS i
CROSS JOIN LATERAL unnest(string_to_array(i.class, ' ')) AS c (name)
JOIN genres AS g ON g.name = c.name;

CREATE TABLE ratings (
    user_id  integer NOT NULL REFERENCES users,
    movie_id integer NOT NULL REFERENCES movies,
    rating   smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    rated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, movie_id)
);
INSERT INTO ratings
SELECT user_id::integer, item_id::integer, rating::numeric::smallint,
       to_timestamp(timestamp::double precision)
FROM ml_ratings;
