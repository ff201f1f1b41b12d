-- Settlement writes about seven ledger entries and one trade row per trade, by COPY. Their
-- foreign keys were checked row by row (one lookup and one FOR KEY SHARE lock per key per
-- row): 80 % of the ledger COPY's time (7,200 entries: 331 ms with the three foreign keys,
-- 74 ms with the check below; cex bench settlement, issue 14). The same references are
-- now checked once per statement, over the statement's new rows (a transition table):
-- a missing journal, user, asset or market still fails the insert, with SQLSTATE 23503
-- as a foreign key would. `cex check` audits them too (ledger-refs, trades).
--
-- What a foreign key also did, refuse deleting a referenced row, the ledger keeps by being
-- append-only: journals and ledger entries are never updated nor deleted (a correction is a
-- new journal), and the triggers below refuse it. Users, assets and markets are never
-- deleted (balances, orders and markets' own foreign keys refuse it for any user or asset
-- the ledger names: every ledger account has its balance row).

ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_journal_id_fkey,
    DROP CONSTRAINT ledger_entries_user_id_fkey,
    DROP CONSTRAINT ledger_entries_asset_fkey;
-- No query reads entries by account (balances hold the totals; `cex check` scans them all):
-- the index only cost every insert a random-page write.
DROP INDEX ledger_entries_account;

CREATE FUNCTION ledger_entries_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.journal_id, n.user_id, n.asset INTO bad FROM new_entries n
    WHERE NOT EXISTS (SELECT FROM journals j WHERE j.id = n.journal_id)
       OR (n.user_id IS NOT NULL AND NOT EXISTS (SELECT FROM users u WHERE u.id = n.user_id))
       OR NOT EXISTS (SELECT FROM assets a WHERE a.code = n.asset)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry refers to a missing row: journal %, user %, asset %',
            bad.journal_id, bad.user_id, bad.asset
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_refs AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_refs();

ALTER TABLE trades DROP CONSTRAINT trades_market_fkey;

CREATE FUNCTION trades_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.market, n.trade_id INTO bad FROM new_trades n
    WHERE NOT EXISTS (SELECT FROM markets m WHERE m.name = n.market)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trade %:% of a market not in the registry', bad.market, bad.trade_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trades_refs AFTER INSERT ON trades
    REFERENCING NEW TABLE AS new_trades
    FOR EACH STATEMENT EXECUTE FUNCTION trades_refs();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER journals_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
