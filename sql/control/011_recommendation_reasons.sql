-- bulk360 control database, schema version 11: why each stored recommendation is on the list
-- ("bought X; 12 customers who bought it bought this", "in your favourite category Shoes", ...).
ALTER TABLE recommendations ADD COLUMN IF NOT EXISTS reason text;
