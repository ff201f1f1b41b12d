"""Settlement holds the balance rows only for their own statement and the commit, on real
Postgres: the trading API locks the same rows for its batches, and every statement settlement
ran while holding them made those batches wait (``cex.settlement.batch``, step 6)."""

from __future__ import annotations

import asyncio

import asyncpg

from cex.settlement.batch import Delivered, Settler, load_fee_user, load_markets
from tests.settlement.harness import Exchange

BTC = 100_000_000
USDT = 1_000_000


async def relation_awaited(conn: asyncpg.Connection, pid: int) -> str:
    """The table whose lock backend ``pid`` waits for, once it waits."""
    async with asyncio.timeout(10):
        while True:
            relation = await conn.fetchval(
                "SELECT relation::regclass::text FROM pg_locks WHERE pid = $1 AND NOT granted",
                pid,
            )
            if relation is not None:
                return str(relation)
            await asyncio.sleep(0.01)


async def test_balances_are_free_while_the_trades_and_ledger_are_written(ex: Exchange) -> None:
    seller = await ex.user("seller@example.com", BTC=BTC)
    buyer = await ex.user("buyer@example.com", USDT=10_000 * USDT)
    await ex.place(user_id=seller, symbol="BTCUSDT", side="SELL", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.place(user_id=buyer, symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match()
    batch = [Delivered(0, i, e) for i, e in enumerate(ex.events)]

    settlement = await asyncpg.connect(ex.dsn)
    gate = await asyncpg.connect(ex.dsn)
    trader = await asyncpg.connect(ex.dsn)
    try:
        settler = Settler(await load_markets(settlement), await load_fee_user(settlement))
        # Stop settlement at its trades COPY (the table locked against writes) ...
        held = gate.transaction()
        await held.start()
        await gate.execute("LOCK TABLE trades IN SHARE MODE")
        settling = asyncio.create_task(settler.apply(settlement, batch))
        assert await relation_awaited(gate, settlement.get_server_pid()) == "trades"

        # ... where a trading batch locks the trade's users' funds without waiting.
        async with trader.transaction():
            locked = await trader.fetch(
                "SELECT user_id, asset FROM balances WHERE user_id = ANY($1::bigint[])"
                " ORDER BY user_id, asset FOR UPDATE NOWAIT",
                [seller, buyer],
            )
        assert len(locked) >= 2
        await held.rollback()
        settled = await settling
    finally:
        await settlement.close()
        await gate.close()
        await trader.close()

    assert settled.trades == 1
    # The trade settled all the same: the seller got the quote, less the maker fee.
    available, _ = await ex.balance(seller, "USDT")
    assert 0 < available <= 300 * USDT
