// Each account's top three genres by plays.
MATCH (a:Account)-[:WATCHED]->(:PlayEvent)-[:PLAYED]->(m:Media)
WITH a, m.genre AS genre, count(*) AS plays
ORDER BY a.account_id, plays DESC, genre
WITH a, collect({genre: genre, plays: plays})[0..3] AS top
UNWIND range(0, size(top) - 1) AS i
RETURN a.account_id AS account_id, a.email AS email, i + 1 AS rank, top[i].genre AS genre, top[i].plays AS plays
ORDER BY account_id, rank
