// Churn risk: active subscribers with their streams and tickets in the 30 days before the reference date.
WITH datetime($reference_date) AS reference
MATCH (a:Account)-[:HAS_SUBSCRIPTION]->(s:Subscription)
WHERE toLower(s.status) = 'active'
WITH a, s,
     COUNT { MATCH (a)-[:WATCHED]->(e:PlayEvent)
             WHERE reference - duration('P30D') <= e.event_timestamp < reference RETURN e } AS recent_streams,
     COUNT { MATCH (a)-[:SUBMITTED]->(t:Ticket)
             WHERE reference - duration('P30D') <= t.created_at < reference RETURN t } AS recent_tickets
RETURN a.account_id AS account_id, a.email AS email, s.status AS status, recent_streams, recent_tickets,
       CASE WHEN recent_streams = 0 AND recent_tickets > 0 THEN 'high'
            WHEN recent_streams = 0 THEN 'medium'
            WHEN recent_tickets > 0 THEN 'watch' ELSE 'low' END AS churn_risk
ORDER BY recent_streams, recent_tickets DESC, account_id
