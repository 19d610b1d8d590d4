// The most active streamers with their genres (in alphabetical order).
MATCH (a:Account)-[:WATCHED]->(e:PlayEvent)-[:PLAYED]->(m:Media)
WITH a, e, m ORDER BY m.genre
WITH a, count(e) AS streams, collect(DISTINCT m.genre) AS genres
RETURN a.account_id AS account_id, a.full_name AS name, streams, size(genres) AS genre_count, genres
ORDER BY streams DESC, account_id
LIMIT 10
