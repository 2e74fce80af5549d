-- Sandbox catalogue: applied by the sandbox at start; idempotent.
INSERT INTO products (id, title, description, price, has_stock, delivery)
VALUES
    (1, 'Game key', 'A license key, delivered at once', 4.99, true, ''),
    (2, 'Premium, 30 days', 'Premium features for a month', 9.00, false,
     'Premium is active for 30 days. Thank you!'),
    (3, 'Sticker pack', 'Ten animated stickers', 1.50, false,
     'Your stickers: https://t.me/addstickers/paystream_sandbox')
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('products', 'id'), GREATEST(3, (SELECT max(id) FROM products)));

INSERT INTO stock_items (product_id, payload)
SELECT 1, 'KEY-' || upper(substr(md5(random()::text), 1, 5)) || '-' || upper(substr(md5(random()::text), 1, 5))
FROM generate_series(1, 5)
WHERE NOT EXISTS (SELECT 1 FROM stock_items WHERE product_id = 1);
