-- The public API's own accounts (DESIGN.md §1, §7): email one-time-password login,
-- web sessions, and withdrawals that wait for an operator.

-- One live login code per email (a new request replaces it). Only a keyed hash of the code
-- is stored (HMAC-SHA256 with a server pepper and a per-code salt); `attempts` counts
-- wrong guesses, the row is deleted when the code is used, burned or replaced.
CREATE TABLE login_codes (
    email       text PRIMARY KEY,
    salt        bytea NOT NULL,
    code_hash   bytea NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_ms  bigint NOT NULL,
    expires_ms  bigint NOT NULL
);

-- Web sessions: an opaque random token, stored as its SHA-256 only, and the hash of the
-- session's CSRF token (double-submit cookie). Logout revokes; expiry is absolute.
CREATE TABLE sessions (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    token_hash  bytea NOT NULL UNIQUE,
    csrf_hash   bytea NOT NULL,
    created_ms  bigint NOT NULL,
    expires_ms  bigint NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Withdrawal requests: funds move available → locked when requested (WITHDRAWAL_LOCK),
-- then locked → EXTERNAL when an operator completes it (WITHDRAWAL, with its row in
-- `withdrawals`, so `cex check` counts it as withdrawn) or locked → available when rejected
-- (WITHDRAWAL_RELEASE). A PENDING request's amount is part of the user's locked funds.
ALTER TABLE journals DROP CONSTRAINT journals_kind_check;
ALTER TABLE journals ADD CONSTRAINT journals_kind_check
    CHECK (kind IN ('DEPOSIT', 'WITHDRAWAL', 'ORDER_LOCK', 'ORDER_RELEASE', 'TRADE',
                    'WITHDRAWAL_LOCK', 'WITHDRAWAL_RELEASE'));

CREATE TABLE withdrawal_requests (
    id                  bigserial PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES users (id),
    asset               text NOT NULL REFERENCES assets (code),
    amount              numeric(38, 0) NOT NULL CHECK (amount > 0),
    address             text NOT NULL CHECK (length(address) BETWEEN 1 AND 256),
    client_id           text CHECK (length(client_id) BETWEEN 1 AND 64),
    status              text NOT NULL DEFAULT 'PENDING'
                        CHECK (status IN ('PENDING', 'COMPLETED', 'REJECTED')),
    reason              text,
    lock_journal_id     bigint NOT NULL REFERENCES journals (id),
    final_journal_id    bigint REFERENCES journals (id),
    withdrawal_id       bigint UNIQUE REFERENCES withdrawals (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, client_id),
    CHECK ((status = 'PENDING') = (final_journal_id IS NULL)),
    CHECK ((status = 'COMPLETED') = (withdrawal_id IS NOT NULL))
);
CREATE INDEX withdrawal_requests_user ON withdrawal_requests (user_id, id);
CREATE INDEX withdrawal_requests_pending ON withdrawal_requests (user_id, asset)
    WHERE status = 'PENDING';
