"""Expected events, in the form of ``helpers.brief``: exact, every field but market/offset/ts."""

from __future__ import annotations

from typing import Any

from cex.core.events import Side

from .helpers import B, K

MAKER_PPM = 1000
TAKER_PPM = 2000


def _ceil_ppm(amount: int, ppm: int) -> int:
    return -(-amount * ppm // 1_000_000)


def delta(seq: int, side: Side, price: int, qty: int) -> dict[str, Any]:
    return {"kind": "BookDelta", "seq": seq, "side": side.value, "price": price, "qty": qty}


def _order(
    kind: str, seq: int, oid: int, side: Side, status: str, filled: int, remaining: int,
    locked: int, released: int, user: int,
) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": kind,
        "seq": seq,
        "order_id": oid,
        "user_id": user,
        "side": side.value,
        "status": status,
        "filled_qty": filled,
        "remaining_qty": remaining,
        "locked_remaining": locked,
        "released": released,
    }


def opened(
    seq: int, oid: int, side: Side, price: int | None, remaining: int, locked: int, *,
    filled: int = 0, user: int = 1, working: bool = True, cid: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    status = "PARTIALLY_FILLED" if filled else "NEW"
    d = _order("OrderOpened", seq, oid, side, status, filled, remaining, locked, 0, user)
    d.update(client_order_id=f"c{oid}" if cid is None else cid, price=price, working=working)
    return d


def updated(
    seq: int, oid: int, side: Side, price: int | None, *, filled: int, remaining: int,
    locked: int, released: int = 0, cause: str = "TRADE", user: int = 1, added: int = 0,
) -> dict[str, Any]:  # fmt: skip
    if remaining == 0 and cause == "TRADE":
        status = "FILLED"
    else:
        status = "PARTIALLY_FILLED" if filled else "NEW"
    d = _order("OrderUpdated", seq, oid, side, status, filled, remaining, locked, released, user)
    d.update(cause=cause, price=price, locked_added=added)
    return d


def expired(
    seq: int, oid: int, side: Side, *, filled: int = 0, released: int, reason: str, user: int = 1
) -> dict[str, Any]:
    d = _order("OrderExpired", seq, oid, side, "EXPIRED", filled, 0, 0, released, user)
    d["reason"] = reason
    return d


def cancelled(
    seq: int, oid: int, side: Side, *, filled: int = 0, released: int, user: int = 1,
    reason: str = "USER",
) -> dict[str, Any]:  # fmt: skip
    d = _order("OrderCancelled", seq, oid, side, "CANCELED", filled, 0, 0, released, user)
    d["reason"] = reason
    return d


def rejected(
    seq: int, oid: int, side: Side, *, released: int, reason: str, user: int = 1
) -> dict[str, Any]:
    d = _order("OrderRejected", seq, oid, side, "REJECTED", 0, 0, 0, released, user)
    d["reason"] = reason
    return d


def command_rejected(
    seq: int, command: str, reason: str, *, oid: int | None = None, user: int | None = None,
    released: int = 0,
) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": "CommandRejected", "seq": seq, "command": command, "reason": reason,
        "order_id": oid, "user_id": user, "released": released,
    }  # fmt: skip


def trade(
    seq: int, trade_id: int, price: int, qty: int, taker_side: Side, *, maker: int, taker: int,
    maker_user: int = 1, taker_user: int = 2, maker_ppm: int = MAKER_PPM,
    taker_ppm: int = TAKER_PPM,
) -> dict[str, Any]:  # fmt: skip
    quote, base = price * qty * K, qty * B
    taker_gets, maker_gets = (base, quote) if taker_side is Side.BUY else (quote, base)
    return {
        "kind": "TradeExecuted", "seq": seq, "trade_id": trade_id, "price": price, "qty": qty,
        "quote_amount": quote, "base_amount": base, "taker_side": taker_side.value,
        "maker_order_id": maker, "maker_user_id": maker_user, "taker_order_id": taker,
        "taker_user_id": taker_user, "maker_fee": _ceil_ppm(maker_gets, maker_ppm),
        "taker_fee": _ceil_ppm(taker_gets, taker_ppm),
    }  # fmt: skip


def prevented(
    seq: int, *, taker: int, maker: int, price: int, qty: int, mode: str, user: int = 1
) -> dict[str, Any]:
    return {
        "kind": "MatchPrevented", "seq": seq, "taker_order_id": taker, "taker_user_id": user,
        "maker_order_id": maker, "maker_user_id": user, "price": price, "prevented_qty": qty,
        "stp_mode": mode,
    }  # fmt: skip
