// Most popular media: starts ('play' or 'START') and completions ('stop' or 'FINISH') with a completion rate.
MATCH (e:PlayEvent)-[:PLAYED]->(m:Media)
WITH m,
     sum(CASE WHEN e.action IN ['play', 'START'] THEN 1 ELSE 0 END) AS starts,
     sum(CASE WHEN e.action IN ['stop', 'FINISH'] THEN 1 ELSE 0 END) AS completions
WHERE starts > 0
RETURN m.media_id AS media_id, m.title AS title, m.genre AS genre, starts, completions,
       round(toFloat(completions) / starts, 3) AS completion_rate
ORDER BY starts DESC, media_id
LIMIT 20
