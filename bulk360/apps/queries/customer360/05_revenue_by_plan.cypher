// Revenue by plan over active subscriptions ('active' or 'Active'), with average streams per subscriber.
MATCH (p:Plan)<-[:SUBSCRIBED_TO]-(s:Subscription)<-[:HAS_SUBSCRIPTION]-(a:Account)
WHERE s.status IN ['active', 'Active']
WITH p, a, COUNT { (a)-[:WATCHED]->(:PlayEvent) } AS streams
WITH p, count(a) AS active_subscribers, avg(streams) AS avg_streams
RETURN p.plan_name AS plan, active_subscribers,
       round(active_subscribers * p.monthly_fee, 2) AS monthly_revenue,
       round(avg_streams, 2) AS avg_streams_per_subscriber
ORDER BY monthly_revenue DESC, plan
