-- Control rows of the Customer 360 sample. Run by `bulk360 sample load customer360` in the
-- control database, in a session that has a temporary table sample_target(host, port, db_user,
-- db_prefix) naming where the sample databases were created. Re-running it replaces the sample's rows.

INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env, schema_name, description)
SELECT s.name, t.host, t.port, t.db_prefix || s.db_name, t.db_user, 'ETL_DB_PASSWORD', 'public', s.description
FROM sample_target AS t,
     (VALUES ('profiles', 'profiles_db', 'Accounts, plans, payment methods and subscriptions'),
             ('streaming', 'streaming_db', 'Media catalogue and play events'),
             ('support', 'support_db', 'Legacy help desk; knows customers only by e-mail'))
         AS s (name, db_name, description)
ON CONFLICT (name) DO UPDATE
SET db_host = EXCLUDED.db_host, db_port = EXCLUDED.db_port, db_name = EXCLUDED.db_name,
    db_user = EXCLUDED.db_user, db_password = NULL, db_password_env = EXCLUDED.db_password_env,
    schema_name = EXCLUDED.schema_name, is_active = true, description = EXCLUDED.description;

DELETE FROM field_exclusion_rules WHERE source_name IN ('profiles', 'streaming', 'support');
DELETE FROM node_label_mappings WHERE source_name IN ('profiles', 'streaming', 'support');
DELETE FROM relationship_mappings WHERE description LIKE 'customer360:%';

INSERT INTO field_exclusion_rules (source_name, table_name, column_name, reason) VALUES
    ('profiles', 'accounts', 'hashed_password', 'credential hash: must never leave the source');

INSERT INTO node_label_mappings (source_name, table_name, label, key_columns, description) VALUES
    ('profiles', 'accounts', 'Account', NULL, 'customer360: one node per account'),
    ('profiles', 'plans', 'Plan', NULL, 'customer360'),
    ('profiles', 'payment_methods', 'PaymentMethod', NULL, 'customer360'),
    ('profiles', 'subscriptions', 'Subscription', NULL, 'customer360'),
    ('streaming', 'media', 'Media', NULL, 'customer360'),
    ('streaming', 'play_events', 'PlayEvent', NULL, 'customer360'),
    ('support', 'tickets', 'Ticket', NULL, 'customer360'),
    ('support', 'tags', 'Tag', NULL, 'customer360'),
    ('support', 'ticket_tag_links', 'TicketTagLink', '{ticket_id,tag_id}', 'customer360: composite key');

INSERT INTO relationship_mappings
    (relationship_type, from_label, from_alias, to_label, to_alias, join_condition,
     link_source, link_table, link_alias, property_columns, description)
VALUES
    ('HAS_PAYMENT_METHOD', 'Account', 'a', 'PaymentMethod', 'pm', 'a.account_id = pm.account_id',
     NULL, NULL, NULL, '{pm.is_default}', 'customer360: same-database foreign key'),
    ('HAS_SUBSCRIPTION', 'Account', 'a', 'Subscription', 's', 'a.account_id = s.account_id',
     NULL, NULL, NULL, '{}', 'customer360: same-database foreign key'),
    ('SUBSCRIBED_TO', 'Subscription', 's', 'Plan', 'p', 's.plan_id = p.plan_id',
     NULL, NULL, NULL, '{}', 'customer360: same-database foreign key'),
    ('PLAYED', 'PlayEvent', 'pe', 'Media', 'm', 'pe.media_id = m.media_id',
     NULL, NULL, NULL, '{}', 'customer360: same-database foreign key'),
    ('TAGGED_WITH', 'Ticket', 't', 'Tag', 'g', 't.ticket_id = l.ticket_id AND l.tag_id = g.tag_id',
     'support', 'ticket_tag_links', 'l', '{l.tagged_at,l.tagged_by}',
     'customer360: many-to-many through a link table, with its properties'),
    ('SUBMITTED', 'Account', 'a', 'Ticket', 't', 'a.email = t.customer_email',
     NULL, NULL, NULL, '{}', 'customer360: cross-database, by e-mail'),
    ('WATCHED', 'Account', 'a', 'PlayEvent', 'pe', 'a.account_id = pe.account_id',
     NULL, NULL, NULL, '{}', 'customer360: cross-database, by account id');
