-- The reference checks of 0010/0011, one index probe per distinct key instead of one per
-- new row: a settlement batch's ~7,000 ledger entries name ~2,400 journals, ~2,000 users
-- and two assets, and its ~1,200 trades one market. Same references checked, same SQLSTATE
-- 23503, same messages (naming the first entry or trade with the missing key).
CREATE OR REPLACE FUNCTION ledger_entries_refs() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.journal_id, n.user_id, n.asset INTO bad FROM new_entries n
    WHERE n.journal_id = (
        SELECT k.id FROM (SELECT DISTINCT journal_id FROM new_entries) k(id)
        WHERE NOT EXISTS (SELECT FROM journals j WHERE j.id = k.id) LIMIT 1)
    LIMIT 1;
    IF NOT FOUND THEN
        SELECT n.journal_id, n.user_id, n.asset INTO bad FROM new_entries n
        WHERE n.user_id = (
            SELECT k.id FROM (SELECT DISTINCT user_id FROM new_entries) k(id)
            WHERE k.id IS NOT NULL AND NOT EXISTS (SELECT FROM users u WHERE u.id = k.id)
            LIMIT 1)
        LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        SELECT n.journal_id, n.user_id, n.asset INTO bad FROM new_entries n
        WHERE n.asset = (
            SELECT k.code FROM (SELECT DISTINCT asset FROM new_entries) k(code)
            WHERE NOT EXISTS (SELECT FROM assets a WHERE a.code = k.code) LIMIT 1)
        LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry refers to a missing row: journal %, user %, asset %',
            bad.journal_id, bad.user_id, bad.asset
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION trades_refs() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.market, n.trade_id INTO bad FROM new_trades n
    WHERE n.market = (
        SELECT k.name FROM (SELECT DISTINCT market FROM new_trades) k(name)
        WHERE NOT EXISTS (SELECT FROM markets m WHERE m.name = k.name) LIMIT 1)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'trade %:% of a market not in the registry', bad.market, bad.trade_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
