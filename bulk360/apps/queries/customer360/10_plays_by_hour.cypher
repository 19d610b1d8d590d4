// Plays per hour of day (UTC) with an activity level relative to the busiest hour.
MATCH (e:PlayEvent)
WITH e.event_timestamp.hour AS hour, count(*) AS plays
WITH collect({hour: hour, plays: plays}) AS hours, max(plays) AS busiest
UNWIND hours AS h
RETURN h.hour AS hour, h.plays AS plays,
       CASE WHEN h.plays >= 0.8 * busiest THEN 'peak'
            WHEN h.plays >= 0.5 * busiest THEN 'high'
            WHEN h.plays >= 0.25 * busiest THEN 'moderate' ELSE 'low' END AS activity_level
ORDER BY hour
