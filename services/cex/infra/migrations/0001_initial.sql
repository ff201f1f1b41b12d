-- The financial schema (DESIGN.md §3, §6). Amounts are integers: asset amounts in the
-- asset's smallest unit (NUMERIC(38,0)); prices in ticks and quantities in lots of their
-- market. Balances can never go negative; ledger journals balance per asset.

CREATE TABLE assets (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z0-9]{1,16}$'),
    precision   smallint NOT NULL CHECK (precision BETWEEN 0 AND 18)
);

-- kind FEE is the exchange's fee account (one row, created below).
CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    kind        text NOT NULL DEFAULT 'USER' CHECK (kind IN ('USER', 'FEE')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (email, kind) VALUES ('fees@cex.internal', 'FEE');

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    api_key     text NOT NULL UNIQUE,
    -- HMAC-SHA256 needs the shared secret server-side (as Binance does).
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- The market registry, mirrored from Market resources (or examples/ locally).
CREATE TABLE markets (
    name                text PRIMARY KEY,           -- DNS name, e.g. btc-usdt
    symbol              text NOT NULL UNIQUE,       -- API symbol, e.g. BTCUSDT
    base                text NOT NULL REFERENCES assets (code),
    quote               text NOT NULL REFERENCES assets (code),
    partition           integer NOT NULL UNIQUE CHECK (partition >= 0),
    spec                jsonb NOT NULL,             -- the Market spec it was built from
    status              text NOT NULL DEFAULT 'TRADING'
                        CHECK (status IN ('TRADING', 'HALTED', 'CANCEL_ONLY', 'DELETED')),
    -- Commands into the engine are numbered per market under this row's lock, so the
    -- outbox order is the commit order (the relay publishes by this number).
    next_command_seq    bigint NOT NULL DEFAULT 1,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE balances (
    user_id     bigint NOT NULL REFERENCES users (id),
    asset       text NOT NULL REFERENCES assets (code),
    available   numeric(38, 0) NOT NULL DEFAULT 0 CHECK (available >= 0),
    locked      numeric(38, 0) NOT NULL DEFAULT 0 CHECK (locked >= 0),
    PRIMARY KEY (user_id, asset)
);

-- Double-entry ledger. Every movement of money is one journal whose entries sum to zero
-- per asset. Buckets: a user's AVAILABLE or LOCKED funds, the fee account (its user's
-- AVAILABLE), and EXTERNAL (the world outside: deposits and withdrawals).
CREATE TABLE journals (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('DEPOSIT', 'WITHDRAWAL', 'ORDER_LOCK',
                                              'ORDER_RELEASE', 'TRADE')),
    reference   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    journal_id  bigint NOT NULL REFERENCES journals (id),
    user_id     bigint REFERENCES users (id),            -- NULL for EXTERNAL
    bucket      text NOT NULL CHECK (bucket IN ('AVAILABLE', 'LOCKED', 'EXTERNAL')),
    asset       text NOT NULL REFERENCES assets (code),
    amount      numeric(38, 0) NOT NULL CHECK (amount <> 0),  -- + credit, - debit
    CHECK ((bucket = 'EXTERNAL') = (user_id IS NULL))
);
CREATE INDEX ledger_entries_journal ON ledger_entries (journal_id);
CREATE INDEX ledger_entries_account ON ledger_entries (user_id, asset);

CREATE TABLE deposits (
    id          bigserial PRIMARY KEY,
    external_id text NOT NULL UNIQUE,
    user_id     bigint NOT NULL REFERENCES users (id),
    asset       text NOT NULL REFERENCES assets (code),
    amount      numeric(38, 0) NOT NULL CHECK (amount > 0),
    journal_id  bigint NOT NULL REFERENCES journals (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE withdrawals (
    id          bigserial PRIMARY KEY,
    external_id text NOT NULL UNIQUE,
    user_id     bigint NOT NULL REFERENCES users (id),
    asset       text NOT NULL REFERENCES assets (code),
    amount      numeric(38, 0) NOT NULL CHECK (amount > 0),
    journal_id  bigint NOT NULL REFERENCES journals (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE order_ids;

CREATE TABLE orders (
    id                  bigint PRIMARY KEY,
    market              text NOT NULL REFERENCES markets (name),
    user_id             bigint NOT NULL REFERENCES users (id),
    client_order_id     text NOT NULL,
    side                text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type                text NOT NULL,
    time_in_force       text NOT NULL,
    price               bigint,              -- ticks
    quantity            bigint,              -- lots
    quote_order_qty     numeric(38, 0),      -- quote units
    stop_price          bigint,              -- ticks
    expire_at           bigint,              -- ms since the epoch (GTT)
    stp_mode            text NOT NULL,
    status              text NOT NULL CHECK (status IN ('PENDING', 'NEW', 'PARTIALLY_FILLED',
                                             'FILLED', 'CANCELED', 'EXPIRED', 'REJECTED')),
    locked_asset        text NOT NULL REFERENCES assets (code),
    locked              numeric(38, 0) NOT NULL CHECK (locked >= 0),
    locked_remaining    numeric(38, 0) NOT NULL CHECK (locked_remaining >= 0),
    filled_qty          bigint NOT NULL DEFAULT 0,
    cumulative_quote    numeric(38, 0) NOT NULL DEFAULT 0,
    reason              text,
    expire_requested    boolean NOT NULL DEFAULT false,
    created_ms          bigint NOT NULL,     -- the command's ts
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, client_order_id)
);
CREATE INDEX orders_open ON orders (market, status) WHERE status IN ('PENDING', 'NEW',
                                                                     'PARTIALLY_FILLED');
CREATE INDEX orders_gtt ON orders (expire_at) WHERE expire_at IS NOT NULL
    AND status IN ('NEW', 'PARTIALLY_FILLED') AND NOT expire_requested;

CREATE TABLE trades (
    market          text NOT NULL REFERENCES markets (name),
    trade_id        bigint NOT NULL,
    price           bigint NOT NULL,
    qty             bigint NOT NULL,
    quote_amount    numeric(38, 0) NOT NULL,
    base_amount     numeric(38, 0) NOT NULL,
    taker_side      text NOT NULL,
    maker_order_id  bigint NOT NULL,
    taker_order_id  bigint NOT NULL,
    maker_user_id   bigint NOT NULL,
    taker_user_id   bigint NOT NULL,
    maker_fee       numeric(38, 0) NOT NULL,
    taker_fee       numeric(38, 0) NOT NULL,
    seq             bigint NOT NULL,
    ts              bigint NOT NULL,
    PRIMARY KEY (market, trade_id)
);

-- Commands waiting for the relay, numbered per market (markets.next_command_seq).
CREATE TABLE outbox (
    market          text NOT NULL REFERENCES markets (name),
    command_seq     bigint NOT NULL,
    kind            text NOT NULL,
    order_id        bigint,
    payload         bytea NOT NULL,
    published       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market, command_seq)
);
CREATE INDEX outbox_unpublished ON outbox (market, command_seq) WHERE NOT published;

-- Settlement's position per market, stored in the same transaction as the effects.
CREATE TABLE settlement_progress (
    market          text PRIMARY KEY REFERENCES markets (name),
    last_seq        bigint NOT NULL,
    next_offset     bigint NOT NULL
);

CREATE TABLE candles (
    market          text NOT NULL REFERENCES markets (name),
    interval        text NOT NULL,
    open_time       bigint NOT NULL,
    open            bigint NOT NULL,
    high            bigint NOT NULL,
    low             bigint NOT NULL,
    close           bigint NOT NULL,
    volume          bigint NOT NULL,          -- lots
    quote_volume    numeric(38, 0) NOT NULL,  -- quote units
    trades          bigint NOT NULL,
    last_seq        bigint NOT NULL,
    PRIMARY KEY (market, interval, open_time)
);
