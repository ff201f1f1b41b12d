"""``cex check``: audit the financial invariants of DESIGN.md §6 against the database.

Each check is one query that returns the rows violating it (an empty result is a pass), so
the audit scales with the database, not with Python. Checks:

``conservation``      per asset, the sum of all balances (available + locked, fee account
                      included) equals deposits minus withdrawals
``external``          per asset, the EXTERNAL ledger bucket mirrors deposits − withdrawals
``journal-balance``   every journal's entries sum to zero per asset, and no journal is empty
``ledger-refs``       every ledger entry's journal, user and asset exist (the database checks
                      them per statement at insert, migration 0010, not by foreign keys)
``ledger-vs-balance`` per (user, asset), the AVAILABLE and LOCKED entries sum to the
                      balance columns
``locked-vs-orders``  per (user, asset), locked equals the locked_remaining of that user's
                      open orders (PENDING, NEW, PARTIALLY_FILLED) on that asset plus the
                      amounts of that user's PENDING withdrawal requests of that asset
                      (completed requests are rows of ``withdrawals``)
``negative``          no negative balance and no negative locked_remaining
``closed-orders``     a terminal order (FILLED, CANCELED, EXPIRED, REJECTED) locks nothing
``trades``            trades unique per (market, trade id); their orders exist, in the
                      trade's market (so the market exists), with the trade's users
``engine-book``       (with an engine snapshot) the engine's open orders are the database's
                      open orders of that market, with the same user, side, fill and funds

The snapshot comparison is meaningful at rest: when settlement has applied exactly the
events the snapshot covers (``settlement_progress.last_seq == snapshot next_seq - 1``). The
audit reports it as a violation when it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from cex.core.matching import MatchingEngine

__all__ = ["Violation", "audit", "run"]

OPEN = ("PENDING", "NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class Violation:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.detail}"


_CHECKS: dict[str, tuple[str, str]] = {
    "conservation": (
        """
        WITH held AS (SELECT asset, sum(available + locked) AS amount FROM balances
                      GROUP BY asset),
             moved AS (SELECT asset, sum(amount) AS amount FROM (
                         SELECT asset, amount FROM deposits
                         UNION ALL SELECT asset, -amount FROM withdrawals) t GROUP BY asset)
        SELECT coalesce(h.asset, m.asset) AS asset, coalesce(h.amount, 0) AS held,
               coalesce(m.amount, 0) AS moved
        FROM held h FULL JOIN moved m ON h.asset = m.asset
        WHERE coalesce(h.amount, 0) <> coalesce(m.amount, 0)
        """,
        "{asset}: balances hold {held}, deposits − withdrawals = {moved}",
    ),
    "external": (
        """
        WITH ext AS (SELECT asset, -sum(amount) AS amount FROM ledger_entries
                     WHERE bucket = 'EXTERNAL' GROUP BY asset),
             moved AS (SELECT asset, sum(amount) AS amount FROM (
                         SELECT asset, amount FROM deposits
                         UNION ALL SELECT asset, -amount FROM withdrawals) t GROUP BY asset)
        SELECT coalesce(e.asset, m.asset) AS asset, coalesce(e.amount, 0) AS ledger,
               coalesce(m.amount, 0) AS moved
        FROM ext e FULL JOIN moved m ON e.asset = m.asset
        WHERE coalesce(e.amount, 0) <> coalesce(m.amount, 0)
        """,
        "{asset}: the EXTERNAL ledger says {ledger} came in, deposits − withdrawals = {moved}",
    ),
    "journal-balance": (
        """
        SELECT j.id, j.kind, j.reference, e.asset, coalesce(e.total, 0) AS total
        FROM journals j
        LEFT JOIN (SELECT journal_id, asset, sum(amount) AS total FROM ledger_entries
                   GROUP BY journal_id, asset) e ON e.journal_id = j.id
        WHERE e.journal_id IS NULL OR e.total <> 0
        ORDER BY j.id
        """,
        "journal {id} ({kind} {reference}) sums to {total} in {asset}",
    ),
    "ledger-refs": (
        """
        SELECT e.journal_id, e.user_id, e.asset, count(*) AS entries FROM ledger_entries e
        WHERE NOT EXISTS (SELECT FROM journals j WHERE j.id = e.journal_id)
           OR (e.user_id IS NOT NULL AND NOT EXISTS (SELECT FROM users u WHERE u.id = e.user_id))
           OR NOT EXISTS (SELECT FROM assets a WHERE a.code = e.asset)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        "{entries} ledger entries of journal {journal_id} (user {user_id}, {asset}) refer to a"
        " missing journal, user or asset",
    ),
    "ledger-vs-balance": (
        """
        WITH ledger AS (
            SELECT user_id, asset,
                   sum(amount) FILTER (WHERE bucket = 'AVAILABLE') AS available,
                   sum(amount) FILTER (WHERE bucket = 'LOCKED') AS locked
            FROM ledger_entries WHERE bucket <> 'EXTERNAL' GROUP BY user_id, asset)
        SELECT coalesce(b.user_id, l.user_id) AS user_id, coalesce(b.asset, l.asset) AS asset,
               coalesce(b.available, 0) AS available, coalesce(l.available, 0) AS l_available,
               coalesce(b.locked, 0) AS locked, coalesce(l.locked, 0) AS l_locked
        FROM balances b FULL JOIN ledger l ON b.user_id = l.user_id AND b.asset = l.asset
        WHERE coalesce(b.available, 0) <> coalesce(l.available, 0)
           OR coalesce(b.locked, 0) <> coalesce(l.locked, 0)
        ORDER BY 1, 2
        """,
        "user {user_id} {asset}: balance available {available} locked {locked}, ledger says"
        " available {l_available} locked {l_locked}",
    ),
    "locked-vs-orders": (
        """
        WITH needed AS (
            SELECT user_id, asset, sum(amount) AS amount FROM (
                SELECT user_id, locked_asset AS asset, locked_remaining AS amount
                FROM orders WHERE status = ANY($1::text[])
                UNION ALL SELECT user_id, asset, amount FROM withdrawal_requests
                WHERE status = 'PENDING') t
            GROUP BY user_id, asset)
        SELECT coalesce(b.user_id, n.user_id) AS user_id, coalesce(b.asset, n.asset) AS asset,
               coalesce(b.locked, 0) AS locked, coalesce(n.amount, 0) AS needed
        FROM balances b FULL JOIN needed n ON b.user_id = n.user_id AND b.asset = n.asset
        WHERE coalesce(b.locked, 0) <> coalesce(n.amount, 0)
        ORDER BY 1, 2
        """,
        "user {user_id} {asset}: locked {locked}, open orders and pending withdrawals"
        " still need {needed}",
    ),
    "negative": (
        """
        SELECT 'balance' AS what, user_id::text || ' ' || asset AS id,
               least(available, locked) AS amount
        FROM balances WHERE available < 0 OR locked < 0
        UNION ALL
        SELECT 'order', id::text, locked_remaining FROM orders WHERE locked_remaining < 0
        """,
        "{what} {id} is negative: {amount}",
    ),
    "closed-orders": (
        """
        SELECT id, status, locked_remaining FROM orders
        WHERE status <> ALL($1::text[]) AND locked_remaining <> 0 ORDER BY id
        """,
        "order {id} is {status} but still locks {locked_remaining}",
    ),
    "trades": (
        """
        SELECT t.market, t.trade_id, count(*) AS copies,
               bool_or(m.id IS NULL OR m.market <> t.market OR m.user_id <> t.maker_user_id)
                   AS bad_maker,
               bool_or(k.id IS NULL OR k.market <> t.market OR k.user_id <> t.taker_user_id)
                   AS bad_taker
        FROM trades t
        LEFT JOIN orders m ON m.id = t.maker_order_id
        LEFT JOIN orders k ON k.id = t.taker_order_id
        GROUP BY t.market, t.trade_id
        HAVING count(*) > 1
            OR bool_or(m.id IS NULL OR m.market <> t.market OR m.user_id <> t.maker_user_id)
            OR bool_or(k.id IS NULL OR k.market <> t.market OR k.user_id <> t.taker_user_id)
        ORDER BY 1, 2
        """,
        "trade {market}:{trade_id}: {copies} copies, maker order bad: {bad_maker},"
        " taker order bad: {bad_taker}",
    ),
}


async def audit(conn: asyncpg.Connection, snapshots: Sequence[bytes] = ()) -> list[Violation]:
    """Every violation found, in check order (empty: the database is consistent).

    Runs in one REPEATABLE READ read-only transaction, so all checks see one instant.
    """
    violations: list[Violation] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for name, (sql, template) in _CHECKS.items():
            args = [list(OPEN)] if "$1" in sql else []
            for row in await conn.fetch(sql, *args):
                violations.append(Violation(name, template.format(**dict(row))))
        for snapshot in snapshots:
            violations.extend(await _compare_book(conn, snapshot))
    return violations


async def _compare_book(conn: asyncpg.Connection, snapshot: bytes) -> list[Violation]:
    engine = MatchingEngine.restore(snapshot)
    config = engine.config
    found: list[Violation] = []

    def report(detail: str) -> None:
        found.append(Violation("engine-book", f"{config.name}: {detail}"))

    settled = await conn.fetchval(
        "SELECT last_seq FROM settlement_progress WHERE market = $1", config.name
    )
    if (settled or 0) != engine.next_seq - 1:
        report(
            f"the snapshot is at seq {engine.next_seq - 1}, settlement at {settled or 0}:"
            " compare them at rest"
        )
        return found
    rows = await conn.fetch(
        "SELECT id, user_id, side, status, filled_qty, locked_remaining FROM orders"
        " WHERE market = $1 AND status IN ('NEW', 'PARTIALLY_FILLED')",
        config.name,
    )
    db = {r["id"]: r for r in rows}
    book = {o["id"]: o for o in engine.open_orders()}
    for order_id in sorted(book.keys() - db.keys()):
        report(f"order {order_id} is open in the engine, not in the database")
    for order_id in sorted(db.keys() - book.keys()):
        report(f"order {order_id} is {db[order_id]['status']} in the database, not in the engine")
    for order_id in sorted(book.keys() & db.keys()):
        o, r = book[order_id], db[order_id]
        mine = (o["user"], str(o["side"]), o["filled"], o["locked"])
        theirs = (r["user_id"], r["side"], r["filled_qty"], int(r["locked_remaining"]))
        if mine != theirs:
            report(
                f"order {order_id}: engine (user, side, filled, locked) = {mine},"
                f" database = {theirs}"
            )
    return found


async def run(dsn: str, snapshots: Sequence[bytes] = ()) -> list[Violation]:
    """Connect to ``dsn`` and :func:`audit` it."""
    conn = await asyncpg.connect(dsn)
    try:
        return await audit(conn, snapshots)
    finally:
        await conn.close()
