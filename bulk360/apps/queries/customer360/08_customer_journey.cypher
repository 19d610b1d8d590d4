// The complete journey of one customer ($email, default john.smith@email.com): plan, status, payment, content, streams, tickets, topics.
MATCH (a:Account {email: $email})
RETURN a.full_name AS name, a.email AS email, a.created_at AS customer_since,
       COLLECT { MATCH (a)-[:HAS_SUBSCRIPTION]->(s:Subscription)-[:SUBSCRIBED_TO]->(p:Plan)
                 RETURN p.plan_name + ' (' + s.status + ')' } AS subscriptions,
       COLLECT { MATCH (a)-[:HAS_PAYMENT_METHOD]->(pm:PaymentMethod)
                 RETURN pm.card_type + ' ending ' + pm.card_last_four } AS payment_methods,
       COUNT { (a)-[:WATCHED]->(:PlayEvent) } AS streams,
       COLLECT { MATCH (a)-[:WATCHED]->(:PlayEvent)-[:PLAYED]->(m:Media)
                 RETURN DISTINCT m.title ORDER BY m.title LIMIT 10 } AS content,
       COUNT { (a)-[:SUBMITTED]->(:Ticket) } AS tickets,
       COLLECT { MATCH (a)-[:SUBMITTED]->(:Ticket)-[:TAGGED_WITH]->(g:Tag)
                 RETURN DISTINCT g.tag_name ORDER BY g.tag_name } AS ticket_topics
