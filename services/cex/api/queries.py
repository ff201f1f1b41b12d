"""The public API's reads from Postgres (settlement's truth): orders, trades, prevented
matches, balances.

Every query is scoped by the authenticated user id: no request can read another account.
"""

from __future__ import annotations

from typing import Any

import asyncpg

ORDER_COLUMNS = (
    "id, market, user_id, client_order_id, side, type, time_in_force, price, quantity,"
    " quote_order_qty, stop_price, expire_at, stp_mode, status, filled_qty, cumulative_quote,"
    " reason, created_ms, (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms"
)
OPEN = ["PENDING", "NEW", "PARTIALLY_FILLED"]


class _Where:
    """A WHERE clause built from the filters a request sent (absent ones add nothing), with
    numbered parameters: `conditions` start as given, `args` as `$1, $2, …`."""

    def __init__(self, conditions: list[str], args: list[Any]) -> None:
        self.conditions = conditions
        self.args = args

    def add(self, condition: str, value: Any) -> None:
        """`condition` with `{}` for the value's parameter, unless `value` is None."""
        if value is not None:
            self.args.append(value)
            self.conditions.append(condition.format(f"${len(self.args)}"))

    def limit(self, limit: int) -> str:
        """The clause, and `limit`'s parameter last."""
        self.args.append(limit)
        return " AND ".join(self.conditions)

    @property
    def limit_param(self) -> str:
        return f"${len(self.args)}"


async def order(
    db: asyncpg.Pool, user_id: int, market: str, order_id: int | None, client_order_id: str | None
) -> dict[str, Any] | None:
    """The user's order by id, or by client order id (the open one, else the latest)."""
    if order_id is not None:
        row = await db.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2 AND market = $3",
            order_id, user_id, market,
        )  # fmt: skip
    else:
        row = await db.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND market = $2"
            " AND client_order_id = $3 ORDER BY status = ANY($4::text[]) DESC, id DESC LIMIT 1",
            user_id, market, client_order_id, OPEN,
        )  # fmt: skip
    return None if row is None else dict(row)


async def order_status(db: asyncpg.Pool, order_id: int) -> str | None:
    status: str | None = await db.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
    return status


async def open_orders(db: asyncpg.Pool, user_id: int, markets: list[str]) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND market = ANY($2::text[])"
        " AND status = ANY($3::text[]) ORDER BY id",
        user_id, markets, OPEN,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def all_orders(
    db: asyncpg.Pool, user_id: int, market: str, *, from_id: int | None,
    start_ms: int | None, end_ms: int | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Binance's allOrders: from `orderId` up, or within [startTime, endTime]; else the most
    recent `limit` orders; always in ascending id order."""
    where = _Where(["user_id = $1", "market = $2"], [user_id, market])
    where.add("id >= {}", from_id)
    where.add("created_ms >= {}", start_ms)
    where.add("created_ms <= {}", end_ms)
    newest_first = from_id is None and start_ms is None
    clause = where.limit(limit)
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE {clause}"
        f" ORDER BY id {'DESC' if newest_first else 'ASC'} LIMIT {where.limit_param}",
        *where.args,
    )
    found = [dict(r) for r in rows]
    return found[::-1] if newest_first else found


_TRADE_COLUMNS = (
    "market, trade_id, price, qty, quote_amount, taker_side, maker_order_id, taker_order_id,"
    " maker_fee, taker_fee, ts"
)


async def my_trades(
    db: asyncpg.Pool, user_id: int, market: str, *, order_id: int | None,
    from_id: int | None, start_ms: int | None, end_ms: int | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The user's trades in a market, one row per side the user was on (a self-trade gives
    two), ascending by trade id."""
    filters = _Where(["market = $2"], [user_id, market])
    filters.add("(CASE WHEN side.is_maker THEN maker_order_id ELSE taker_order_id END) = {}",
                order_id)  # fmt: skip
    filters.add("trade_id >= {}", from_id)
    filters.add("ts >= {}", start_ms)
    filters.add("ts <= {}", end_ms)
    newest_first = from_id is None and start_ms is None
    where = filters.limit(limit)
    order = "DESC" if newest_first else "ASC"
    rows = await db.fetch(
        f"SELECT * FROM ("
        f" SELECT {_TRADE_COLUMNS}, true AS is_maker FROM trades WHERE maker_user_id = $1"
        f" UNION ALL"
        f" SELECT {_TRADE_COLUMNS}, false AS is_maker FROM trades WHERE taker_user_id = $1"
        f") side WHERE {where} ORDER BY trade_id {order}, is_maker {order}"
        f" LIMIT {filters.limit_param}",
        *filters.args,
    )
    found = [dict(r) for r in rows]
    return found[::-1] if newest_first else found


async def prevented_matches(
    db: asyncpg.Pool, user_id: int, market: str, *, prevented_match_id: int | None,
    order_id: int | None, from_id: int | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The user's prevented matches (self-trade prevention) in a market: the one with
    `prevented_match_id`, or those of `order_id` (as taker or maker) from `from_id` up;
    ascending by id, at most `limit`."""
    where = _Where(["user_id = $1", "market = $2"], [user_id, market])
    where.add("prevented_match_id = {}", prevented_match_id)
    where.add("(taker_order_id = {0} OR maker_order_id = {0})", order_id)
    where.add("prevented_match_id >= {}", from_id)
    clause = where.limit(limit)
    rows = await db.fetch(
        "SELECT prevented_match_id, taker_order_id, maker_order_id, price, prevented_qty,"
        f" stp_mode, ts FROM prevented_matches WHERE {clause}"
        f" ORDER BY prevented_match_id LIMIT {where.limit_param}",
        *where.args,
    )
    return [dict(r) for r in rows]


async def balances(db: asyncpg.Pool, user_id: int) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT b.asset, b.available, b.locked, a.precision FROM balances b"
        " JOIN assets a ON a.code = b.asset WHERE b.user_id = $1 ORDER BY b.asset",
        user_id,
    )
    return [dict(r) for r in rows]
