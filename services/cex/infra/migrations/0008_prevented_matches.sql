-- Self-trade prevention decisions, one row per MATCH_PREVENTED event (cex.core.events),
-- written by settlement in the batch that applies the event; the public API's
-- GET /api/v3/myPreventedMatches. No money moved: no balance or ledger entry refers to them.
CREATE TABLE prevented_matches (
    market              text NOT NULL REFERENCES markets (name),
    prevented_match_id  bigint NOT NULL,            -- the event's seq: unique per market
    user_id             bigint NOT NULL REFERENCES users (id),  -- taker's = maker's
    taker_order_id      bigint NOT NULL,
    maker_order_id      bigint NOT NULL,
    price               bigint NOT NULL CHECK (price > 0),          -- ticks, the maker's
    prevented_qty       bigint NOT NULL CHECK (prevented_qty > 0),  -- lots, the maker's
    stp_mode            text NOT NULL CHECK (stp_mode IN
                            ('EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH', 'DECREMENT')),
    ts                  bigint NOT NULL,            -- ms since the epoch, the command's
    PRIMARY KEY (market, prevented_match_id)
);
-- A user's prevented matches in a market, by id; and by either order (orderId queries).
CREATE INDEX prevented_matches_user ON prevented_matches (user_id, market, prevented_match_id);
CREATE INDEX prevented_matches_taker ON prevented_matches (taker_order_id);
CREATE INDEX prevented_matches_maker ON prevented_matches (maker_order_id);
