"""Balances, deposits and withdrawals: `/cex/v1/...`.

Trader (session-authenticated, `cex.api.sessions`):

* ``GET /cex/v1/balances``: free and locked funds per asset, decimal strings.
* ``POST /cex/v1/faucet``: free funds, only when `api_faucet_enabled` (dev stacks), at most
  `api_faucet_max` per request.
* ``POST /cex/v1/withdrawals``: locks the amount (available → locked) and records a PENDING
  request for an operator; idempotent on the optional ``clientId``.
* ``GET /cex/v1/withdrawals``: the trader's requests, newest first.

Operator (``Authorization: Bearer <api_operator_token>``; refused when no token is set):

* ``POST /cex/v1/operator/deposits``: credits a user, idempotent on ``externalId``.
* ``GET /cex/v1/operator/withdrawals?status=PENDING&userId=…``: requests to process.
* ``POST /cex/v1/operator/withdrawals/{id}/complete`` (locked → EXTERNAL) and ``/reject``
  (locked → available). Repeating the same call returns the same final state and moves
  nothing; the other one after it is refused (-9037).

Amounts are decimal strings on the asset's precision (`cex.core.money`), never floats;
a bad amount changes nothing. The money rules are `cex.core.withdrawals`.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, model_validator
from redis.exceptions import RedisError

from cex.api import schemas
from cex.api import sessions as web
from cex.api.deps import State
from cex.api.errors import ApiError
from cex.api.sessions import SessionUser
from cex.api.state import ApiState
from cex.core import withdrawals as rules
from cex.core.errors import AmountError
from cex.core.money import asset_step, format_units, parse_decimal, parse_units
from cex.infra import accounts
from cex.infra import redis as keys

log = logging.getLogger(__name__)

router = APIRouter(prefix="/cex/v1", tags=["Wallet"])

_ASSET = re.compile(r"^[A-Z0-9]{1,16}$")
#: Largest amount accepted in one request, in the asset's smallest units: sums of many
#: still fit the NUMERIC(38, 0) columns.
MAX_UNITS = 10**36


# --------------------------------------------------------------------------- models


class Balance(BaseModel):
    asset: str
    free: str
    locked: str


class FaucetRequest(BaseModel):
    asset: str = Field(max_length=16, examples=["USDT"])
    amount: str = Field(max_length=80, description="Decimal string", examples=["1000"])


class Transfer(BaseModel):
    id: int
    externalId: str
    userId: int
    asset: str
    amount: str
    created: bool = Field(description="False when the externalId had been credited before.")


class WithdrawalRequest(BaseModel):
    asset: str = Field(max_length=16, examples=["BTC"])
    amount: str = Field(max_length=80, description="Decimal string", examples=["0.5"])
    address: str = Field(max_length=256, description="Destination address")
    clientId: str | None = Field(
        None, min_length=1, max_length=64, description="Idempotency key of the request"
    )


class Withdrawal(BaseModel):
    id: int
    asset: str
    amount: str
    address: str
    clientId: str | None
    status: Literal["PENDING", "COMPLETED", "REJECTED"]
    reason: str | None
    createTime: int
    updateTime: int


class OperatorDeposit(BaseModel):
    email: str | None = Field(None, max_length=254)
    userId: int | None = Field(None, gt=0, lt=2**63)
    asset: str = Field(max_length=16)
    amount: str = Field(max_length=80, description="Decimal string")
    externalId: str = Field(min_length=1, max_length=128, description="Idempotency key")

    @model_validator(mode="after")
    def _one_user(self) -> OperatorDeposit:
        if (self.email is None) == (self.userId is None):
            raise ValueError("exactly one of email and userId")
        return self


class Rejection(BaseModel):
    reason: str | None = Field(None, max_length=256)


# --------------------------------------------------------------------------- helpers


def _account_error(error: accounts.AccountError) -> ApiError:
    match error:
        case accounts.UnknownUser():
            return web.unknown_user()
        case accounts.UnknownAsset():
            return web.unknown_asset()
        case accounts.InsufficientFunds():
            return web.insufficient_balance()
        case accounts.ConflictingRequest():
            return web.conflicting_request(str(error))
        case accounts.UnknownWithdrawal():
            return web.unknown_withdrawal()
        case accounts.WithdrawalFinalised():
            return web.withdrawal_final(str(error))
        case accounts.InvalidAddress():
            return web.invalid_address()
    return web.invalid_request(str(error))


async def _announce(state: ApiState, user_id: int, asset: str, kind: str, delta: int) -> None:
    """Tell the user's streams about money that moved outside trading, once committed
    (`balanceUpdate` + `outboundAccountPosition`). The database is the truth: a lost
    message is logged, never an error for a request whose change is already committed."""
    try:
        row = await state.pool.fetchrow(
            "SELECT available, locked FROM balances WHERE user_id = $1 AND asset = $2",
            user_id, asset,
        )  # fmt: skip
        if row is None:
            return
        balance = keys.BalanceState(asset, int(row["available"]), int(row["locked"]))
        change = keys.BalanceChange(ts=state.clock_ms(), kind=kind, delta=delta,
                                    balance=balance)  # fmt: skip
        await keys.publish_balance_change(state.redis, state.settings.redis_prefix, user_id,
                                          change)  # fmt: skip
    except (RedisError, OSError) as exc:
        log.warning("publishing a balance change failed: %s", exc)


async def _units(
    conn: asyncpg.Connection, asset: str, amount: str, maximum: str | None = None
) -> tuple[int, int]:
    """(amount in the asset's smallest units, precision); -9030 / -9031 on bad input."""
    if not _ASSET.match(asset):
        raise web.unknown_asset()
    try:
        precision = await accounts.asset_precision(conn, asset)
    except accounts.UnknownAsset:
        raise web.unknown_asset() from None
    step = asset_step(precision)
    limit = MAX_UNITS
    if maximum is not None:
        limit = min(limit, int(parse_decimal(maximum, field="maximum") / step))
    try:
        return parse_units(amount, step, field="amount", maximum=limit), precision
    except AmountError as error:
        raise web.invalid_amount(str(error)) from None


def _withdrawal(w: accounts.WithdrawalRequest, precision: int) -> dict[str, Any]:
    return {
        "id": w.id,
        "asset": w.asset,
        "amount": format_units(w.amount, asset_step(precision)),
        "address": w.address,
        "clientId": w.client_id,
        "status": w.status.value,
        "reason": w.reason,
        "createTime": w.created_ms,
        "updateTime": w.updated_ms,
    }


def _transfer(t: accounts.Transfer, precision: int) -> dict[str, Any]:
    return {
        "id": t.id,
        "externalId": t.external_id,
        "userId": t.user_id,
        "asset": t.asset,
        "amount": format_units(t.amount, asset_step(precision)),
        "created": t.created,
    }


async def operator(request: Request, state: State) -> None:
    """The operator role: ``Authorization: Bearer <api_operator_token>`` (constant time)."""
    expected = state.settings.api_operator_token
    if not expected:
        raise web.operator_disabled()
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise web.operator_refused()


Operator = Depends(operator)


# --------------------------------------------------------------------------- trader


@router.get("/balances", summary="Your balances (free and locked) per asset",
            response_model=list[Balance],
            responses=schemas.errors_only(401))  # fmt: skip
async def balances(user_id: SessionUser, state: State) -> list[dict[str, str]]:
    return [
        {"asset": b.asset, "free": format_units(b.available, asset_step(b.precision)),
         "locked": format_units(b.locked, asset_step(b.precision))}
        for b in await accounts.balances(state.pool, user_id)
    ]  # fmt: skip


@router.post(
    "/faucet",
    summary="Free test funds (dev exchanges only)",
    response_model=Transfer,
    responses=schemas.errors_only(400, 401, 403),
)
async def faucet(body: FaucetRequest, user_id: SessionUser, state: State) -> dict[str, Any]:
    if not state.settings.api_faucet_enabled:
        raise web.faucet_disabled()
    async with state.pool.acquire() as conn:
        maximum = state.settings.api_faucet_max
        units, precision = await _units(conn, body.asset, body.amount, maximum)
        reference = f"faucet:{uuid.uuid4()}"
        try:
            done = await accounts.deposit(conn, user_id, body.asset, units, reference)
        except accounts.AccountError as error:
            raise _account_error(error) from None
    await _announce(state, user_id, body.asset, "DEPOSIT", units)
    return _transfer(done, precision)


@router.post("/withdrawals", summary="Request a withdrawal (locks the amount until an operator "
             "completes or rejects it)", response_model=Withdrawal,
             responses=schemas.errors_only(400, 401, 409))  # fmt: skip
async def request_withdrawal(
    body: WithdrawalRequest, user_id: SessionUser, state: State
) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        units, precision = await _units(conn, body.asset, body.amount)
        try:
            request = await accounts.request_withdrawal(
                conn, user_id, body.asset, units, body.address, body.clientId
            )
        except accounts.AccountError as error:
            raise _account_error(error) from None
    if request.changed:
        await _announce(state, user_id, body.asset, "WITHDRAWAL", -units)
    return _withdrawal(request, precision)


@router.get("/withdrawals", summary="Your withdrawal requests, newest first",
            response_model=list[Withdrawal],
            responses=schemas.errors_only(401))  # fmt: skip
async def list_withdrawals(user_id: SessionUser, state: State) -> list[dict[str, Any]]:
    precisions = await accounts.asset_precisions(state.pool)
    return [_withdrawal(w, precisions[w.asset])
            for w in await accounts.withdrawal_requests(state.pool, user_id)]  # fmt: skip


# --------------------------------------------------------------------------- operator


@router.post("/operator/deposits", summary="Credit a deposit (operator; idempotent on "
             "externalId)", response_model=Transfer, dependencies=[Operator],
             responses=schemas.errors_only(400, 401, 403, 404, 409))  # fmt: skip
async def operator_deposit(body: OperatorDeposit, state: State) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        units, precision = await _units(conn, body.asset, body.amount)
        try:
            if body.userId is not None:
                user_id = body.userId
            else:
                assert body.email is not None
                user_id = await accounts.user_id_by_email(conn, body.email)
            done = await accounts.deposit(conn, user_id, body.asset, units, body.externalId)
        except accounts.AccountError as error:
            raise _account_error(error) from None
    if done.created:
        await _announce(state, user_id, body.asset, "DEPOSIT", units)
    return _transfer(done, precision)


class OperatorWithdrawal(Withdrawal):
    userId: int


@router.get("/operator/withdrawals", summary="Withdrawal requests of every user, newest first "
            "(operator)", response_model=list[OperatorWithdrawal],
            dependencies=[Operator],
            responses=schemas.errors_only(400, 401, 403))  # fmt: skip
async def operator_withdrawals(
    state: State,
    status: Literal["PENDING", "COMPLETED", "REJECTED"] | None = None,
    userId: Annotated[int | None, Query(gt=0, lt=2**63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[dict[str, Any]]:
    precisions = await accounts.asset_precisions(state.pool)
    wanted = rules.Status(status) if status else None
    found = await accounts.withdrawal_requests(state.pool, userId, status=wanted, limit=limit)
    return [{**_withdrawal(w, precisions[w.asset]), "userId": w.user_id} for w in found]


async def _finish(state: State, withdrawal_id: int, reason: str | None, complete: bool) -> Any:
    if not 0 < withdrawal_id < 2**63:
        raise web.unknown_withdrawal()
    async with state.pool.acquire() as conn:
        try:
            if complete:
                done = await accounts.complete_withdrawal(conn, withdrawal_id)
            else:
                done = await accounts.reject_withdrawal(conn, withdrawal_id, reason)
        except accounts.AccountError as error:
            raise _account_error(error) from None
        precision = await accounts.asset_precision(conn, done.asset)
    if done.changed:  # complete: locked funds left; reject: they are available again
        kind, delta = ("WITHDRAWAL", 0) if complete else ("WITHDRAWAL_REJECTED", done.amount)
        await _announce(state, done.user_id, done.asset, kind, delta)
    return _withdrawal(done, precision)


@router.post("/operator/withdrawals/{withdrawal_id}/complete",
             summary="Complete a withdrawal: the locked funds leave (operator; idempotent)",
             response_model=Withdrawal, dependencies=[Operator],
             responses=schemas.errors_only(400, 401, 403, 404, 409))  # fmt: skip
async def complete_withdrawal(withdrawal_id: int, state: State) -> dict[str, Any]:
    result: dict[str, Any] = await _finish(state, withdrawal_id, None, complete=True)
    return result


@router.post("/operator/withdrawals/{withdrawal_id}/reject",
             summary="Reject a withdrawal: the locked funds come back (operator; idempotent)",
             response_model=Withdrawal, dependencies=[Operator],
             responses=schemas.errors_only(400, 401, 403, 404, 409))  # fmt: skip
async def reject_withdrawal(
    withdrawal_id: int, state: State, body: Rejection | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = await _finish(
        state, withdrawal_id, body.reason if body else None, complete=False
    )
    return result
