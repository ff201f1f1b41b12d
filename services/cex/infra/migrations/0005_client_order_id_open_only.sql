-- Client order ids as Binance has them: unique among a user's *open* orders only. Once an
-- order is closed (FILLED, CANCELED, EXPIRED, REJECTED) its id may be reused; a reuse while
-- it is open is refused by the trading API ("Duplicate order sent."), and this index is the
-- last word when two replicas race. Lookups by (user, client order id) keep an index.
ALTER TABLE orders DROP CONSTRAINT orders_user_id_client_order_id_key;
CREATE UNIQUE INDEX orders_open_client_order_id ON orders (user_id, client_order_id)
    WHERE status IN ('PENDING', 'NEW', 'PARTIALLY_FILLED');
CREATE INDEX orders_client_order_id ON orders (user_id, client_order_id);
