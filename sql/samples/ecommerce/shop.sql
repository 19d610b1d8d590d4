-- shop: the e-commerce sample (customers, a category tree, products, orders and browsing events).
-- Ids collide across tables on purpose (customer 1, order 1, product 1, category 1).
-- Shape: 3,000 customers, the last 300 brand new (no events, no orders); 2,000 products whose
-- popularity falls off steeply (a few hits, a long tail); each customer favours one category;
-- repeat buyers; every order item is also a 'purchase' event at the order's time.
SELECT setseed(0.23);
SET max_parallel_workers_per_gather = 0;  -- the same random() sequence on every load

CREATE TABLE customers (
    id         integer PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT n,
       (ARRAY['Ana', 'Ben', 'Chloé', 'Dev', 'Elif', 'Femi', 'Greta', 'Hiro', 'Ines', 'Jonas',
              'Kaito', 'Lena', 'Mateo', 'Nia', 'Oskar', 'Priya'])[1 + n % 16]
           || ' ' || (ARRAY['Adams', 'Berg', 'Costa', 'Dubois', 'Eriksen', 'Fischer', 'García',
                            'Haddad', 'Ito', 'Jensen', 'Kowalski', 'Laurent', 'Müller'])[1 + (n * 7) % 13],
       'customer' || n || '@shop.example',
       -- the brand-new customers signed up in the last week
       CASE WHEN n > 2700 THEN timestamptz '2026-10-25 00:00:00+00' + random() * interval '6 days'
            ELSE timestamptz '2024-10-01 00:00:00+00' + random() * interval '700 days' END
FROM generate_series(1, 3000) AS n;

CREATE TABLE categories (
    id        integer PRIMARY KEY,
    name      text NOT NULL,
    parent_id integer REFERENCES categories
);
-- Six departments (ids 1-6), four subcategories each (ids 7-30).
INSERT INTO categories
SELECT n, (ARRAY['Electronics', 'Home', 'Books', 'Fashion', 'Sports', 'Toys'])[n], NULL
FROM generate_series(1, 6) AS n;
INSERT INTO categories
SELECT 6 + (d - 1) * 4 + s,
       (ARRAY['Electronics', 'Home', 'Books', 'Fashion', 'Sports', 'Toys'])[d] || ' · '
           || (ARRAY[ARRAY['Phones', 'Laptops', 'Audio', 'Cameras'],
                     ARRAY['Kitchen', 'Garden', 'Lighting', 'Bedding'],
                     ARRAY['Fiction', 'Cooking', 'Travel', 'Science'],
                     ARRAY['Shoes', 'Jackets', 'Bags', 'Watches'],
                     ARRAY['Running', 'Cycling', 'Camping', 'Yoga'],
                     ARRAY['Puzzles', 'Blocks', 'Dolls', 'Games']])[d][s],
       d
FROM generate_series(1, 6) AS d, generate_series(1, 4) AS s;

CREATE TABLE products (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    category_id integer NOT NULL REFERENCES categories,
    brand       text NOT NULL,
    price       numeric(10, 2) NOT NULL
);
-- Product n sits in subcategory 7 + n % 24; low ids are the popular ones (see the events).
INSERT INTO products
SELECT n,
       (ARRAY['Classic', 'Pro', 'Lite', 'Max', 'Mini', 'Eco', 'Smart', 'Ultra'])[1 + n % 8] || ' '
           || (SELECT split_part(name, ' · ', 2) FROM categories WHERE id = 7 + n % 24) || ' ' || n,
       7 + n % 24,
       (ARRAY['Acme', 'Borealis', 'Cobalt', 'Dune', 'Ember', 'Fjord', 'Granite', 'Halo', 'Iris',
              'Juniper', 'Kestrel', 'Lumen'])[1 + (n * 5) % 12] || CASE WHEN n % 3 = 0 THEN ' Co' ELSE '' END,
       round((4.99 + power(random(), 2) * 600)::numeric, 2)
FROM generate_series(1, 2000) AS n;

-- A product drawn with a steep popularity curve, mostly from the customer's favourite category
-- (subcategory 7 + customer % 24). Products of subcategory k are k - 7 + 24·j for j = 0..83.
CREATE FUNCTION pick_product(customer integer, r1 float8, r2 float8) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN r1 < 0.7
        THEN 24 * floor(83 * power(r2, 3))::int + (customer % 24) + CASE WHEN customer % 24 = 0 THEN 24 ELSE 0 END
        ELSE 1 + floor(1999 * power(r2, 3))::int END
$$;

CREATE TABLE orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers,
    status      text NOT NULL CHECK (status IN ('paid', 'shipped', 'delivered', 'cancelled')),
    created_at  timestamptz NOT NULL
);
-- Repeat buyers: the customer draw is skewed to low ids (brand-new customers never order).
INSERT INTO orders
SELECT o.n, o.c,
       (ARRAY['delivered', 'delivered', 'delivered', 'shipped', 'paid', 'cancelled'])[1 + floor(random() * 6)::int],
       cu.created_at + random() * (timestamptz '2026-11-20 00:00:00+00' - cu.created_at)
FROM (SELECT n, 1 + floor(2700 * power(random(), 1.7))::int AS c
      FROM generate_series(1, 7000) AS n) AS o
JOIN customers AS cu ON cu.id = o.c
ORDER BY o.n;

CREATE TABLE order_items (
    order_id   integer NOT NULL REFERENCES orders,
    product_id integer NOT NULL REFERENCES products,
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
INSERT INTO order_items
SELECT DISTINCT ON (o.id, p.id) o.id, p.id, 1 + floor(power(random(), 3) * 3)::int, p.price
FROM orders AS o
CROSS JOIN LATERAL (
    SELECT pick_product(o.customer_id, random(), random()) AS product_id
    FROM generate_series(1, 1 + (o.id * 7) % 4)
) AS pick
JOIN products AS p ON p.id = pick.product_id
ORDER BY o.id, p.id;

CREATE TABLE events (
    id          bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers,
    product_id  integer NOT NULL REFERENCES products,
    event_type  text NOT NULL CHECK (event_type IN ('view', 'add_to_cart', 'purchase')),
    occurred_at timestamptz NOT NULL
);
-- Browsing: 60,000 views, a fifth of them followed by an add to cart a few minutes later.
CREATE TEMPORARY TABLE views AS
SELECT v.n, v.c, pick_product(v.c, random(), random()) AS product_id,
       cu.created_at + random() * (timestamptz '2026-11-20 00:00:00+00' - cu.created_at) AS at
FROM (SELECT n, 1 + floor(2700 * power(random(), 1.4))::int AS c
      FROM generate_series(1, 60000) AS n) AS v
JOIN customers AS cu ON cu.id = v.c
ORDER BY v.n;
INSERT INTO events (id, customer_id, product_id, event_type, occurred_at)
SELECT row_number() OVER (ORDER BY at, n, kind), c, product_id, kind, at + offset_time
FROM (
    SELECT n, c, product_id, 'view' AS kind, at, interval '0' AS offset_time FROM views
    UNION ALL
    SELECT n, c, product_id, 'add_to_cart', at, (2 + n % 9) * interval '1 minute'
    FROM views WHERE n % 5 = 0
    UNION ALL
    SELECT 100000 + oi.order_id * 10, o.customer_id, oi.product_id, 'purchase', o.created_at, interval '0'
    FROM order_items AS oi JOIN orders AS o ON o.id = oi.order_id
) AS e;
DROP FUNCTION pick_product(integer, float8, float8);
