-- The check of 0010 as index lookups: planned over the whole statement, its NOT EXISTS
-- tests became hashed subplans reading every journal and every user for each insert
-- (300,000 journals: 313 ms for a 7,000-entry COPY, and growing with the ledger). One
-- anti-join with hash and merge joins off is one index probe per new entry per key
-- (the same COPY: 16 ms).
CREATE OR REPLACE FUNCTION ledger_entries_refs() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.journal_id, n.user_id, n.asset INTO bad FROM new_entries n
    LEFT JOIN journals j ON j.id = n.journal_id
    LEFT JOIN users u ON u.id = n.user_id
    LEFT JOIN assets a ON a.code = n.asset
    WHERE j.id IS NULL OR (n.user_id IS NOT NULL AND u.id IS NULL) OR a.code IS NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry refers to a missing row: journal %, user %, asset %',
            bad.journal_id, bad.user_id, bad.asset
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
