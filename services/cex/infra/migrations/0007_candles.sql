-- Candles as Binance's klines have them (cex.core.candles): close time, taker-buy volumes,
-- first and last trade ids. Written by the candle persister and `cex candles rebuild`,
-- upserted by (market, interval, open_time) and only by a version with a higher last_seq.
ALTER TABLE candles
    ADD COLUMN close_time        bigint NOT NULL DEFAULT 0,
    ADD COLUMN taker_buy_volume  numeric(38, 0) NOT NULL DEFAULT 0,  -- lots
    ADD COLUMN taker_buy_quote   numeric(38, 0) NOT NULL DEFAULT 0,  -- quote units
    ADD COLUMN first_trade_id    bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_trade_id     bigint NOT NULL DEFAULT 0;
ALTER TABLE candles ALTER COLUMN volume TYPE numeric(38, 0);
ALTER TABLE candles ADD CONSTRAINT candles_interval_known CHECK (interval IN
    ('1s', '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h',
     '1d', '3d', '1w', '1M'));
