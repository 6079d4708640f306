/** The embedded database's sample data: a small shop, enough to try joins, windows and JSON. */
export const DEMO_SEED_SQL = `
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL, email text, created_at date NOT NULL);
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, category text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), created_at timestamptz NOT NULL, status text NOT NULL, total numeric(10,2) NOT NULL);
CREATE TABLE order_items (order_id int REFERENCES orders(id), product_id int REFERENCES products(id), quantity int NOT NULL, PRIMARY KEY (order_id, product_id));
CREATE TABLE events (id int PRIMARY KEY, customer_id int, payload jsonb NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['north','south','east','west'])[1 + g % 4], 'customer' || g || '@example.com', date '2025-01-01' + g FROM generate_series(1, 50) g;
INSERT INTO products SELECT g, 'product ' || g, (ARRAY['books','games','tools'])[1 + g % 3], 5 + (g * 13 % 90) FROM generate_series(1, 30) g;
INSERT INTO orders SELECT g, 1 + g % 50, timestamptz '2026-01-01' + (g * 7 || ' hours')::interval, CASE WHEN g % 9 = 0 THEN 'refunded' ELSE 'paid' END, 0 FROM generate_series(1, 400) g;
INSERT INTO order_items SELECT o, 1 + (o * k) % 30, 1 + (o + k) % 3 FROM generate_series(1, 400) o, generate_series(1, 3) k ON CONFLICT DO NOTHING;
UPDATE orders o SET total = s.t FROM (SELECT i.order_id, sum(i.quantity * p.price) t FROM order_items i JOIN products p ON p.id = i.product_id GROUP BY i.order_id) s WHERE s.order_id = o.id;
INSERT INTO events SELECT g, 1 + g % 50, jsonb_build_object('kind', (ARRAY['view','click','buy'])[1 + g % 3], 'page', '/p/' || (g % 30)) FROM generate_series(1, 300) g;
ANALYZE;
`;
