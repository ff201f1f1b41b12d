"""The ledger's references, checked per statement (migration 0010), its append-only rule,
`cex check`'s audit of the references, and settlement's balance writes (receivers' rows
created, a debit from a missing row refused)."""

from __future__ import annotations

import asyncpg
import pytest

from cex.audit.check import run as audit
from cex.settlement.batch import Delivered
from cex.settlement.errors import InconsistentDatabase
from cex.settlement.pgtext import copy_rows
from tests.settlement.harness import Exchange
from tests.settlement.test_refusals import BTC, USDT, settler, snapshot_of_db

ENTRY = "INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)"


async def journal(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO journals (kind, reference) VALUES ('DEPOSIT', 'test') RETURNING id"
        )
    )


async def test_entries_must_refer_to_a_journal_a_user_and_an_asset(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=10 * USDT)
    async with ex.pool.acquire() as conn:
        entries = await conn.fetchval("SELECT count(*) FROM ledger_entries")
        for values in (
            "($2 + 1000, NULL, 'EXTERNAL', 'USDT', -1), ($2 + 1000, $1, 'AVAILABLE', 'USDT', 1)",
            "($2, NULL, 'EXTERNAL', 'USDT', -1), ($2, $1 + 1000, 'AVAILABLE', 'USDT', 1)",
            "($2, NULL, 'EXTERNAL', 'DOGE', -1), ($2, $1, 'AVAILABLE', 'DOGE', 1)",
        ):
            with pytest.raises(asyncpg.ForeignKeyViolationError, match="missing row"):
                async with conn.transaction():
                    await conn.execute(f"{ENTRY} VALUES {values}", alice, await journal(conn))
        # COPY, as settlement writes them, is checked the same way, each distinct key once
        # (migration 0012): one bad key among many good ones is found and named.
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="missing row"):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "ledger_entries",
                    records=[(await journal(conn), alice + 1000, "AVAILABLE", "USDT", 1)],
                    columns=("journal_id", "user_id", "bucket", "asset", "amount"),
                )
        good = await journal(conn)
        for bad, message in (
            ((good + 1000, alice, "USDT"), f"journal {good + 1000}, user {alice}, asset USDT"),
            ((good, alice + 1000, "USDT"), f"journal {good}, user {alice + 1000}, asset USDT"),
            ((good, alice, "DOGE"), f"journal {good}, user {alice}, asset DOGE"),
        ):
            rows = [(good, alice, "AVAILABLE", "USDT", 1)] * 50 + [(*bad[:2], "LOCKED", bad[2], 1)]
            with pytest.raises(asyncpg.ForeignKeyViolationError, match=message):
                async with conn.transaction():
                    await copy_rows(
                        conn,
                        "ledger_entries",
                        ("journal_id", "user_id", "bucket", "asset", "amount"),
                        [*rows, (good, None, "EXTERNAL", "USDT", -51)],
                    )
        # One statement writing the journal and its entries (as the trading API does).
        await conn.execute(
            "WITH j AS (INSERT INTO journals (kind, reference) VALUES ('DEPOSIT', 'cte')"
            " RETURNING id)"
            f" {ENTRY} SELECT id, NULL::bigint, 'EXTERNAL', 'USDT', -1 FROM j"
            " UNION ALL SELECT id, $1::bigint, 'AVAILABLE', 'USDT', 1 FROM j",
            alice,
        )
        assert await conn.fetchval("SELECT count(*) FROM ledger_entries") == entries + 2


async def test_trades_must_be_of_a_registered_market(ex: Exchange) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="not in the registry"):
        await ex.pool.execute(
            "INSERT INTO trades (market, trade_id, price, qty, quote_amount, base_amount,"
            " taker_side, maker_order_id, taker_order_id, maker_user_id, taker_user_id,"
            " maker_fee, taker_fee, seq, ts) VALUES ('doge-usdt', 1, 1, 1, 1, 1, 'BUY', 1, 2,"
            " 1, 1, 0, 0, 1, 0)"
        )
    assert await ex.pool.fetchval("SELECT count(*) FROM trades") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journals SET reference = 'rewritten'",
        "DELETE FROM journals",
        "TRUNCATE journals CASCADE",
        "UPDATE ledger_entries SET amount = amount * 2",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
    ],
)
async def test_the_ledger_is_append_only(ex: Exchange, statement: str) -> None:
    await ex.user("alice@example.com", USDT=10 * USDT)
    before = await ex.pool.fetch("SELECT * FROM ledger_entries ORDER BY journal_id, bucket")
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await ex.pool.execute(statement)
    after = await ex.pool.fetch("SELECT * FROM ledger_entries ORDER BY journal_id, bucket")
    assert after == before


async def test_check_reports_entries_whose_references_are_gone(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=10 * USDT)
    assert await audit(ex.dsn) == []
    async with ex.pool.acquire() as conn, conn.transaction():
        # What only a superuser bypassing the triggers could write.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            f"{ENTRY} VALUES (2147483647, $1, 'AVAILABLE', 'USDT', 5),"
            " (2147483647, $1, 'AVAILABLE', 'USDT', -5)",
            alice,
        )
    violations = await audit(ex.dsn)
    assert [v.check for v in violations] == ["ledger-refs"]
    assert "2 ledger entries of journal 2147483647" in violations[0].detail


async def test_a_first_receiver_gets_a_balance_row(ex: Exchange) -> None:
    """Alice has no BTC row until she buys some; the seller no USDT row."""
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    assert await ex.pool.fetchval("SELECT count(*) FROM balances WHERE asset = 'BTC'"
                                  " AND user_id = $1", alice) == 0  # fmt: skip
    await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match_and_publish()
    await ex.settle()
    available, locked = await ex.balance(alice, "BTC")
    assert 0 < available <= BTC // 100
    assert locked == 0
    assert (await ex.balance(bob, "USDT"))[0] > 0
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []


async def test_a_debit_from_a_missing_balance_row_is_refused(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    order = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                           timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match_and_publish()
    async with ex.pool.acquire() as conn:
        s = await settler(conn)
        await conn.execute("DELETE FROM balances WHERE user_id = $1", alice)  # corrupted
        # Opened, then cancelled by its user: the release debits LOCKED USDT.
        await ex.cancel(alice, "BTCUSDT", order)
        await ex.match_and_publish()
        before = await snapshot_of_db(conn)
        with pytest.raises(InconsistentDatabase, match="no balance row"):
            await s.apply(conn, [Delivered(0, i, e) for i, e in enumerate(ex.events)])
        assert await snapshot_of_db(conn) == before
