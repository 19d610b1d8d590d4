-- Control rows of the e-commerce sample. Run by `bulk360 sample load ecommerce` in the control
-- database, in a session that has a temporary table sample_target(host, port, db_user, db_prefix)
-- naming where the shop database was created. Re-running it replaces the sample's rows; the rows
-- of other samples stay, so both samples can be active in one graph.

INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env, schema_name, description)
SELECT 'shop', t.host, t.port, t.db_prefix || 'shop', t.db_user, 'ETL_DB_PASSWORD', 'public',
       'E-commerce shop: customers, catalogue, orders and browsing events'
FROM sample_target AS t
ON CONFLICT (name) DO UPDATE
SET db_host = EXCLUDED.db_host, db_port = EXCLUDED.db_port, db_name = EXCLUDED.db_name,
    db_user = EXCLUDED.db_user, db_password = NULL, db_password_env = EXCLUDED.db_password_env,
    schema_name = EXCLUDED.schema_name, is_active = true, description = EXCLUDED.description;

DELETE FROM field_exclusion_rules WHERE source_name = 'shop';
DELETE FROM node_label_mappings WHERE source_name = 'shop';
DELETE FROM relationship_mappings WHERE description LIKE 'ecommerce:%';

-- Ids collide across these tables (customer 1, order 1, product 1): each label has its own id space.
INSERT INTO node_label_mappings (source_name, table_name, label, key_columns, description) VALUES
    ('shop', 'customers', 'Customer', NULL, 'ecommerce'),
    ('shop', 'categories', 'Category', NULL, 'ecommerce: a tree through parent_id'),
    ('shop', 'products', 'Product', NULL, 'ecommerce'),
    ('shop', 'orders', 'Order', NULL, 'ecommerce');

-- The events table is a link table read once for the three event mappings; a filter term in the
-- join condition keeps the rows of one event_type for each relationship type.
INSERT INTO relationship_mappings
    (relationship_type, from_label, from_alias, to_label, to_alias, join_condition,
     link_source, link_table, link_alias, property_columns, description)
VALUES
    ('PLACED', 'Customer', 'c', 'Order', 'o', 'c.id = o.customer_id',
     NULL, NULL, NULL, '{}', 'ecommerce: foreign key'),
    ('CONTAINS', 'Order', 'o', 'Product', 'p', 'o.id = i.order_id AND i.product_id = p.id',
     'shop', 'order_items', 'i', '{i.quantity,i.unit_price}', 'ecommerce: order lines as properties'),
    ('IN_CATEGORY', 'Product', 'p', 'Category', 'c', 'p.category_id = c.id',
     NULL, NULL, NULL, '{}', 'ecommerce: foreign key'),
    ('SUBCATEGORY_OF', 'Category', 'child', 'Category', 'parent', 'child.parent_id = parent.id',
     NULL, NULL, NULL, '{}', 'ecommerce: a label related to itself'),
    ('VIEWED', 'Customer', 'c', 'Product', 'p',
     'c.id = e.customer_id AND e.product_id = p.id AND e.event_type = ''view''',
     'shop', 'events', 'e', '{e.occurred_at}', 'ecommerce: events filtered by type'),
    ('ADDED_TO_CART', 'Customer', 'c', 'Product', 'p',
     'c.id = e.customer_id AND e.product_id = p.id AND e.event_type = ''add_to_cart''',
     'shop', 'events', 'e', '{e.occurred_at}', 'ecommerce: events filtered by type'),
    ('PURCHASED', 'Customer', 'c', 'Product', 'p',
     'c.id = e.customer_id AND e.product_id = p.id AND e.event_type = ''purchase''',
     'shop', 'events', 'e', '{e.occurred_at}', 'ecommerce: events filtered by type');
