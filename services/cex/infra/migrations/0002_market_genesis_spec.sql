-- The spec a market's command stream starts from. An engine that replays its partition from
-- the first command must start from this config (fees and status as they were then), not
-- from today's spec: later changes reach it as CONFIG_UPDATE / MARKET_CONTROL commands in
-- the stream, at the point where they happened.
ALTER TABLE markets ADD COLUMN genesis_spec jsonb;
UPDATE markets SET genesis_spec = spec;
ALTER TABLE markets ALTER COLUMN genesis_spec SET NOT NULL;
