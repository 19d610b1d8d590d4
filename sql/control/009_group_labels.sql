-- bulk360 control database, schema version 9: a label mapping may give its nodes a second,
-- shared label. A template of same-schema sources (one per tenant) maps a table of each to its
-- own label (`Customer_acme`, keys unique per tenant) and gives them all the group label
-- (`Customer`), so that one pattern matches every tenant's nodes.
ALTER TABLE node_label_mappings ADD COLUMN IF NOT EXISTS group_label text;
