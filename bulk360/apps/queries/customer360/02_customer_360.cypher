// Per account: current plan, estimated revenue (fee x months active), streams, distinct titles, tickets, segment.
MATCH (a:Account)
CALL (a) {
  OPTIONAL MATCH (a)-[:HAS_SUBSCRIPTION]->(s:Subscription)-[:SUBSCRIBED_TO]->(p:Plan)
  RETURN s, p ORDER BY s.started_at DESC LIMIT 1
}
WITH a, s, p,
     COUNT { (a)-[:WATCHED]->(:PlayEvent) } AS streams,
     COUNT { MATCH (a)-[:WATCHED]->(:PlayEvent)-[:PLAYED]->(m:Media) RETURN DISTINCT m } AS distinct_titles,
     COUNT { (a)-[:SUBMITTED]->(:Ticket) } AS tickets
WITH a, p, streams, distinct_titles, tickets,
     CASE WHEN s IS NULL THEN 0
          ELSE duration.inMonths(s.started_at, coalesce(s.ended_at, datetime($reference_date))).months END AS months_active
RETURN a.account_id AS account_id, a.email AS email, p.plan_name AS plan, months_active,
       round(coalesce(p.monthly_fee, 0.0) * months_active, 2) AS estimated_revenue,
       streams, distinct_titles, tickets,
       CASE WHEN streams >= 60 THEN 'power user' WHEN streams >= 20 THEN 'regular'
            WHEN streams > 0 THEN 'casual' ELSE 'inactive' END AS segment
ORDER BY estimated_revenue DESC, account_id
