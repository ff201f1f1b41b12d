"""User data streams: settlement's committed updates → Binance's user data events.

Settlement publishes one `UserUpdate` per user and batch on `{prefix}:userdata:{user_id}`
after its transaction committed (the user's events, the orders and balances as the batch
left them); the API publishes a `BalanceChange` after a deposit or withdrawal
(`cex.infra.redis`). `user_streams` (`cex.api.channels`) holds one pattern subscription per
API process while any connection streams, and hands each message to the streams of its
user; a `Renderer` turns it into Binance's events:

* `executionReport` per order change. The engine's events map as follows: ORDER_OPENED →
  NEW; TRADE_EXECUTED → TRADE (one report per side the user is on; status from the order
  event that follows it in the same command); ORDER_CANCELLED → CANCELED; ORDER_EXPIRED →
  EXPIRED; ORDER_UPDATED by an amend → REPLACED, by a triggered stop → NEW (now working),
  by self-trade prevention → TRADE_PREVENTION; ORDER_REJECTED → REJECTED (a FOK order that
  could not fill is EXPIRED, as on Binance). An order that trades or expires in the
  command that created it gets its NEW report first, as on Binance. Cumulative quantities
  (`z`, `Z`) per report are derived from the order's state after the batch.
* `outboundAccountPosition`: the balances the update changed, as committed.
* `balanceUpdate`: a deposit (positive) or withdrawal request (negative) of available funds,
  followed by the `outboundAccountPosition` of that asset.

Static order fields (client order id, type, quantities, prices, creation time) come from
the order rows, read once per order and cached.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from cex.api.channels import UserChannels
from cex.api.markets import MarketDirectory
from cex.api.orders import binance_status
from cex.api.queries import ORDER_COLUMNS
from cex.core.events import (
    CommandRejected,
    Event,
    ExpireReason,
    OrderCancelled,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderUpdated,
    RejectReason,
    Side,
    TradeExecuted,
    UpdateCause,
)
from cex.core.market import MarketConfig
from cex.core.money import asset_step, format_units
from cex.infra import accounts
from cex.infra import redis as keys

log = logging.getLogger(__name__)

Listener = Callable[[keys.UserUpdate | keys.BalanceChange], None]

#: Expiries of the command that created the order (Binance reports NEW, then EXPIRED).
_IMMEDIATE_EXPIRY = {ExpireReason.IOC, ExpireReason.FOK_NOT_FILLABLE,
                     ExpireReason.MARKET_NO_LIQUIDITY, ExpireReason.LOCKED_EXHAUSTED}  # fmt: skip


def user_streams(client: aioredis.Redis, prefix: str) -> UserChannels[keys.UserData]:
    """The user data channels: subscribed while any stream of this process is open."""
    return UserChannels(client, lambda user: keys.userdata_channel(prefix, user),
                        keys.decode_user_data)  # fmt: skip


class Renderer:
    """Binance user data events for one user's stream (state: which orders got their NEW
    report, the static fields of recent orders)."""

    def __init__(
        self, pool: asyncpg.Pool, markets: MarketDirectory, user_id: int,
        clock_ms: Callable[[], int],
    ) -> None:  # fmt: skip
        self.pool = pool
        self.markets = markets
        self.user_id = user_id
        self.clock_ms = clock_ms
        self._rows: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._reported_new: OrderedDict[int, None] = OrderedDict()
        self._precisions: dict[str, int] = {}

    async def render(self, message: keys.UserUpdate | keys.BalanceChange) -> list[dict[str, Any]]:
        if isinstance(message, keys.BalanceChange):
            step = await self._step(message.balance.asset)
            now = self.clock_ms()
            return [
                {"e": "balanceUpdate", "E": now, "a": message.balance.asset,
                 "d": _signed_units(message.delta, step), "T": message.ts},
                await self._position([message.balance], message.ts),
            ]  # fmt: skip
        out = await self._reports(message)
        if message.balances:
            out.append(await self._position(message.balances, message.ts))
        return out

    # ------------------------------------------------------------------ balances

    async def _step(self, asset: str) -> Decimal:
        if asset not in self._precisions:
            self._precisions = await accounts.asset_precisions(self.pool)
        return asset_step(self._precisions[asset])

    async def _position(self, balances: list[keys.BalanceState], ts: int) -> dict[str, Any]:
        rows = []
        for b in sorted(balances, key=lambda b: b.asset):
            step = await self._step(b.asset)
            rows.append({"a": b.asset, "f": format_units(b.available, step),
                         "l": format_units(b.locked, step)})  # fmt: skip
        return {"e": "outboundAccountPosition", "E": self.clock_ms(), "u": ts, "B": rows}

    # ------------------------------------------------------------------ orders

    async def _load(self, order_ids: set[int]) -> None:
        missing = [i for i in order_ids if i not in self._rows]
        if missing:
            rows = await self.pool.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ANY($1::bigint[])"
                " AND user_id = $2",
                missing, self.user_id,
            )  # fmt: skip
            for row in rows:
                self._rows[row["id"]] = dict(row)
        while len(self._rows) > 2_000:
            self._rows.popitem(last=False)

    def _mark_new(self, order_id: int) -> bool:
        """True the first time `order_id` is reported NEW on this stream."""
        if order_id in self._reported_new:
            return False
        self._reported_new[order_id] = None
        while len(self._reported_new) > 10_000:
            self._reported_new.popitem(last=False)
        return True

    async def _reports(self, update: keys.UserUpdate) -> list[dict[str, Any]]:
        mine: list[tuple[int, Event]] = []  # (order id, event) of the user's side(s)
        for event in update.events:
            if isinstance(event, TradeExecuted):
                if event.maker_user_id == self.user_id:
                    mine.append((event.maker_order_id, event))
                if event.taker_user_id == self.user_id:
                    mine.append((event.taker_order_id, event))
            elif isinstance(event, OrderOpened | OrderUpdated | OrderCancelled | OrderExpired
                            | OrderRejected):  # fmt: skip
                mine.append((event.order_id, event))
            # COMMAND_REJECTED (a refused cancel or amend) changes no order: no report.
        if not mine:
            return []
        await self._load({order_id for order_id, _ in mine})
        # Cumulative filled quantity and quote per order before this update's trades.
        after = {o.order_id: o for o in update.orders}
        filled: dict[int, int] = {}
        quote: dict[int, int] = {}
        for order_id in {i for i, _ in mine}:
            row = self._rows.get(order_id)
            state = after.get(order_id)
            filled[order_id] = (
                state.filled_qty if state else int((row or {}).get("filled_qty") or 0)
            )
            quote[order_id] = (
                state.cumulative_quote if state else int((row or {}).get("cumulative_quote") or 0)
            )
        for order_id, event in mine:
            if isinstance(event, TradeExecuted):
                filled[order_id] -= event.qty
                quote[order_id] -= event.quote_amount
        consumed: set[int] = set()
        out: list[dict[str, Any]] = []
        for index, (order_id, event) in enumerate(mine):
            if index in consumed:
                continue
            row = self._rows.get(order_id)
            if row is None:
                continue  # not this user's order (cannot happen) or deleted
            config = self.markets.config(event.market)
            if isinstance(event, TradeExecuted):
                is_maker = event.maker_order_id == order_id and event.maker_user_id == self.user_id
                if event.taker_order_id == order_id and event.maker_order_id == order_id:
                    is_maker = False  # cannot happen: an order never trades with itself
                if not is_maker and self._mark_new(order_id):
                    out.append(self._report(row, config, event, "NEW", "NEW", 0, 0))
                filled[order_id] += event.qty
                quote[order_id] += event.quote_amount
                status = "PARTIALLY_FILLED"
                for later in range(index + 1, len(mine)):
                    later_id, later_event = mine[later]
                    if later_id != order_id:
                        continue
                    if isinstance(later_event, OrderUpdated) and (
                        later_event.cause is UpdateCause.TRADE
                    ):
                        status = later_event.status.value
                        consumed.add(later)
                    break
                out.append(self._trade_report(row, config, event, status, is_maker,
                                              filled[order_id], quote[order_id]))  # fmt: skip
                continue
            assert not isinstance(event, CommandRejected)
            z, cum = filled[order_id], quote[order_id]
            if isinstance(event, OrderOpened):
                if self._mark_new(order_id):
                    out.append(self._report(row, config, event, "NEW", "NEW", z, cum,
                                            working=event.working))  # fmt: skip
            elif isinstance(event, OrderUpdated):
                if event.cause is UpdateCause.STOP_TRIGGERED:
                    out.append(self._report(row, config, event, "NEW", "NEW", z, cum,
                                            working=True))  # fmt: skip
                elif event.cause is UpdateCause.AMEND:
                    row["quantity"] = event.filled_qty + event.remaining_qty
                    row["price"] = event.price
                    out.append(self._report(row, config, event, "REPLACED",
                                            event.status.value, z, cum))  # fmt: skip
                elif event.cause is UpdateCause.STP_DECREMENT:
                    out.append(self._report(row, config, event, "TRADE_PREVENTION",
                                            event.status.value, z, cum))  # fmt: skip
                else:  # a trade's order state whose trade is not in this update
                    out.append(self._report(row, config, event, "TRADE",
                                            event.status.value, z, cum))  # fmt: skip
            elif isinstance(event, OrderCancelled):
                out.append(self._report(row, config, event, "CANCELED", "CANCELED", z, cum,
                                        orig_client_id=row["client_order_id"]))  # fmt: skip
            elif isinstance(event, OrderExpired):
                if event.reason in _IMMEDIATE_EXPIRY and self._mark_new(order_id):
                    out.append(self._report(row, config, event, "NEW", "NEW", 0, 0))
                out.append(self._report(row, config, event, "EXPIRED", "EXPIRED", z, cum))
            elif isinstance(event, OrderRejected):
                status = binance_status("REJECTED", event.reason.value)
                if status == "EXPIRED":  # FOK that could not fill
                    if self._mark_new(order_id):
                        out.append(self._report(row, config, event, "NEW", "NEW", 0, 0))
                    out.append(self._report(row, config, event, "EXPIRED", "EXPIRED", z, cum))
                else:
                    out.append(self._report(row, config, event, "REJECTED", "REJECTED", z, cum,
                                            reject=_reject_reason(event.reason)))  # fmt: skip
        return out

    def _report(
        self, row: dict[str, Any], config: MarketConfig, event: Event, exec_type: str,
        status: str, filled: int, quote: int, *, working: bool | None = None,
        orig_client_id: str | None = None, reject: str = "NONE",
    ) -> dict[str, Any]:  # fmt: skip
        if working is None:
            working = row["type"] not in ("STOP_LOSS", "STOP_LOSS_LIMIT") or status != "NEW"
        report = {
            "e": "executionReport",
            "E": self.clock_ms(),
            "s": config.symbol,
            "c": row["client_order_id"],
            "S": row["side"],
            "o": row["type"],
            "f": row["time_in_force"],
            "q": _opt(row["quantity"], config.format_qty),
            "p": _opt(row["price"], config.format_price),
            "P": _opt(row["stop_price"], config.format_price),
            "F": config.format_qty(0),
            "g": -1,
            "C": orig_client_id or "",
            "x": exec_type,
            "X": status,
            "r": reject,
            "i": row["id"],
            "l": config.format_qty(0),
            "z": config.format_qty(filled),
            "L": config.format_price(0),
            "n": "0",
            "N": None,
            "T": event.ts,
            "t": -1,
            "I": event.seq,
            "w": working,
            "m": False,
            "M": False,
            "O": row["created_ms"],
            "Z": config.format_quote(quote),
            "Y": config.format_quote(0),
            "Q": _opt(row["quote_order_qty"], config.format_quote),
            "W": row["created_ms"],
            "V": row["stp_mode"],
        }
        return report

    def _trade_report(
        self, row: dict[str, Any], config: MarketConfig, trade: TradeExecuted, status: str,
        is_maker: bool, filled: int, quote: int,
    ) -> dict[str, Any]:  # fmt: skip
        report = self._report(row, config, trade, "TRADE", status, filled, quote,
                              working=status != "FILLED")  # fmt: skip
        is_buyer = row["side"] == Side.BUY.value
        fee = trade.maker_fee if is_maker else trade.taker_fee
        report.update({
            "l": config.format_qty(trade.qty),
            "L": config.format_price(trade.price),
            # Fees are charged in the asset received: the buyer's in base, the seller's in quote.
            "n": (config.format_base if is_buyer else config.format_quote)(fee),
            "N": config.base if is_buyer else config.quote,
            "t": trade.trade_id,
            "m": is_maker,
            "Y": config.format_quote(trade.quote_amount),
        })  # fmt: skip
        return report


def _opt(value: Any, fmt: Callable[[int], str]) -> str:
    return fmt(0) if value is None else fmt(int(value))


def _signed_units(amount: int, step: Decimal) -> str:
    text = format_units(abs(amount), step)
    return f"-{text}" if amount < 0 else text


def _reject_reason(reason: RejectReason) -> str:
    """Binance's `r` for our engine's refusals (it has no exact match for most)."""
    if reason is RejectReason.INSUFFICIENT_LOCKED:
        return "INSUFFICIENT_BALANCES"
    if reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID:
        return "DUPLICATE_ORDER"
    return "NONE"
