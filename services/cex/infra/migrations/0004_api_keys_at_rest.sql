-- API keys as the public API uses them (DESIGN.md §7): a label, permissions, HMAC-SHA256
-- keys whose secret is encrypted at rest (AES-GCM, the key id beside it so keys rotate)
-- and Ed25519 keys whose public key the user registered. Plain-text secrets of rows made
-- before this migration are encrypted by the API at start (`apikeys.seal_plaintext`).
ALTER TABLE api_keys ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE api_keys
    ADD COLUMN label text NOT NULL DEFAULT '' CHECK (length(label) <= 64),
    ADD COLUMN kind text NOT NULL DEFAULT 'HMAC' CHECK (kind IN ('HMAC', 'ED25519')),
    ADD COLUMN permissions text[] NOT NULL DEFAULT ARRAY['read', 'trade']
        CHECK (permissions <@ ARRAY['read', 'trade', 'withdraw']),
    ADD COLUMN secret_sealed bytea,
    ADD COLUMN secret_key_id text,
    ADD COLUMN public_key text,
    ADD CONSTRAINT api_keys_material CHECK (
        (kind = 'HMAC' AND (secret IS NOT NULL OR (secret_sealed IS NOT NULL
                                                   AND secret_key_id IS NOT NULL)))
        OR (kind = 'ED25519' AND public_key IS NOT NULL));
CREATE INDEX api_keys_user ON api_keys (user_id);

-- The public API's reads: a user's trades, and trades by time (tickers, klines history).
CREATE INDEX trades_maker ON trades (maker_user_id, market, trade_id);
CREATE INDEX trades_taker ON trades (taker_user_id, market, trade_id);
CREATE INDEX trades_ts ON trades (market, ts);
