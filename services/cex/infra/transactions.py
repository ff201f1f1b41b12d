"""The one lock order of the money tables, and the one rule for retrying a transaction.

Lock order
----------
Every transaction that touches orders, balances or markets takes its row locks in this
order, each table's rows sorted, and never goes back to an earlier table::

    0. its own bookkeeping row        settlement_progress, withdrawal_requests, …
    1. orders                         by id                     FOR UPDATE
    2. balances                       by (user_id, asset)       FOR UPDATE
    3. markets                        by name                   FOR NO KEY UPDATE

Markets come last because the market row also numbers the outbox: its lock is held for the
shortest time, from the final write to the commit. They are locked ``FOR NO KEY UPDATE``
(the lock a plain ``UPDATE`` of a non-key column takes), never ``FOR UPDATE``: inserting a
row that references a market (an order, a trade, an outbox row) takes ``FOR KEY SHARE`` on
it for the foreign key, which ``FOR UPDATE`` would block — a hidden lock on a market in the
middle of a transaction, and the deadlock between settlement (an order, then its trade's
market) and a writer holding the market while it waits for that order.

A transaction may skip any step. :class:`RowLocks` takes the locks and refuses (with
:class:`LockOrderError`, a bug) a step out of order; ``cex.settlement``, ``cex.trading``,
``cex.lifecycle`` and ``cex.infra.accounts`` lock through it.

Retrying
--------
:func:`is_retryable` is the one predicate: a *conflict* (serialization failure, deadlock,
lock not available) means Postgres rolled the transaction back, so running it again is
always safe. A *lost connection* leaves the commit unknown: only idempotent work (settlement,
which records its progress in the same transaction) may retry it. :func:`retrying` wraps it
in a tenacity policy (exponential back-off with jitter, a bounded number of attempts, the
last error re-raised).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

__all__ = [
    "LockOrderError",
    "RowLocks",
    "is_conflict",
    "is_connection_lost",
    "is_retryable",
    "retrying",
]

log = logging.getLogger(__name__)

#: SQLSTATEs of a transaction Postgres rolled back because of concurrent work.
CONFLICT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
    }
)


class LockOrderError(RuntimeError):
    """Rows locked against the stated order: a programming error, never retried."""


def is_conflict(exc: BaseException) -> bool:
    """Postgres rolled the transaction back because of concurrent work: safe to re-run."""
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in CONFLICT_SQLSTATES


def is_connection_lost(exc: BaseException) -> bool:
    """The connection broke: the transaction may or may not have committed."""
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError | asyncpg.InterfaceError | ConnectionError | OSError,
    )


def is_retryable(exc: BaseException, *, idempotent: bool = False) -> bool:
    """Whether a failed transaction may be run again: always after a conflict; after a lost
    connection only if running it twice does no harm (``idempotent``)."""
    return is_conflict(exc) or (idempotent and is_connection_lost(exc))


def retrying(
    *,
    attempts: int = 5,
    idempotent: bool = False,
    also: tuple[type[BaseException], ...] = (),
    initial_wait: float = 0.005,
    max_wait: float = 5.0,
    on_retry: Callable[[BaseException], None] | None = None,
) -> AsyncRetrying:
    """A retry policy for one transaction: ``async for attempt in retrying(): with attempt:
    ...``. Retries what :func:`is_retryable` accepts (plus the caller's own transient
    errors, ``also``) up to ``attempts`` runs in all, then re-raises the last error."""

    def retryable(exc: BaseException) -> bool:
        return is_retryable(exc, idempotent=idempotent) or isinstance(exc, also)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            log.info("transaction failed (%s), attempt %d; retrying", exc, state.attempt_number)
            if on_retry is not None:
                on_retry(exc)

    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=initial_wait, max=max_wait, jitter=initial_wait),
        before_sleep=before_sleep,
        reraise=True,
    )


_ORDERS, _BALANCES, _MARKETS = 1, 2, 3
_STEP_NAMES = {_ORDERS: "orders", _BALANCES: "balances", _MARKETS: "markets"}


class RowLocks:
    """The row locks of one transaction, taken in the stated order (module docstring).

    Each step may be taken once; a step after a later one raises :class:`LockOrderError`.
    Call inside ``conn.transaction()``.
    """

    __slots__ = ("_conn", "_done")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._done = 0

    def _step(self, step: int) -> None:
        if step <= self._done:
            raise LockOrderError(
                f"locking {_STEP_NAMES[step]} after {_STEP_NAMES[self._done]}:"
                " the order is orders → balances → markets (cex.infra.transactions)"
            )
        self._done = step

    async def orders(
        self,
        ids: Iterable[int],
        columns: str = "id",
        *,
        where: str = "TRUE",
        args: Sequence[Any] = (),
    ) -> list[asyncpg.Record]:
        """Lock the orders ``ids`` (those matching ``where`` too, a condition whose
        parameters ``args`` are numbered from ``$2``), by id; returns ``columns`` of each."""
        self._step(_ORDERS)
        rows: list[asyncpg.Record] = await self._conn.fetch(
            f"SELECT {columns} FROM orders WHERE id = ANY($1::bigint[]) AND ({where})"
            " ORDER BY id FOR UPDATE",
            sorted(set(ids)),
            *args,
        )
        return rows

    async def balances(
        self, keys: Iterable[tuple[int, str]], *, create: Iterable[tuple[int, str]] = ()
    ) -> dict[tuple[int, str], tuple[int, int]]:
        """Lock the balances ``(user_id, asset)``, in that order, after creating the rows of
        ``create`` that do not exist yet (empty, in the same order); returns ``(available,
        locked)`` of each locked row that exists."""
        self._step(_BALANCES)
        ordered = sorted(set(keys) | set(create))
        if not ordered:
            return {}
        new = sorted(set(create))
        if new:
            await self._conn.execute(
                "INSERT INTO balances (user_id, asset)"
                " SELECT * FROM unnest($1::bigint[], $2::text[]) ORDER BY 1, 2"
                " ON CONFLICT (user_id, asset) DO NOTHING",
                [k[0] for k in new],
                [k[1] for k in new],
            )
        rows = await self._conn.fetch(
            "SELECT b.user_id, b.asset, b.available, b.locked FROM balances b"
            " JOIN unnest($1::bigint[], $2::text[]) k(user_id, asset)"
            " ON b.user_id = k.user_id AND b.asset = k.asset"
            " ORDER BY b.user_id, b.asset FOR UPDATE OF b",
            [k[0] for k in ordered],
            [k[1] for k in ordered],
        )
        return {(r["user_id"], r["asset"]): (int(r["available"]), int(r["locked"])) for r in rows}

    async def markets(self, names: Iterable[str], columns: str = "name") -> list[asyncpg.Record]:
        """Lock the markets ``names``, by name, ``FOR NO KEY UPDATE``; returns ``columns``
        of each registered one."""
        self._step(_MARKETS)
        rows: list[asyncpg.Record] = await self._conn.fetch(
            f"SELECT {columns} FROM markets WHERE name = ANY($1::text[])"
            " ORDER BY name FOR NO KEY UPDATE",
            sorted(set(names)),
        )
        return rows
