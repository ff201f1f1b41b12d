"""`cex admin …` and `cex migrate`: operator commands against the running stack's database
(`CEX_POSTGRES_DSN`, by default the local stack's)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from cex.core.errors import AmountError
from cex.core.money import asset_step, parse_units
from cex.core.withdrawals import Status as WithdrawalStatus
from cex.infra import accounts, apikeys
from cex.infra.postgres import MigrationError, migrate
from cex.infra.secretbox import SecretBox
from cex.infra.settings import InfraSettings

T = TypeVar("T")

admin_app = typer.Typer(no_args_is_help=True, help="Operator commands on the running stack.")
user_app = typer.Typer(no_args_is_help=True, help="Users.")
apikey_app = typer.Typer(no_args_is_help=True, help="API keys.")
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(apikey_app, name="apikey")
withdrawal_app = typer.Typer(no_args_is_help=True, help="Withdrawal requests.")
admin_app.add_typer(withdrawal_app, name="withdrawal")

Dsn = Annotated[str | None, typer.Option("--dsn", help="Postgres DSN (default CEX_POSTGRES_DSN)")]


def _with_connection(dsn: str | None, action: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await asyncpg.connect(dsn or InfraSettings().postgres_dsn)
        try:
            return await action(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except (accounts.AccountError, apikeys.ApiKeyError, AmountError, MigrationError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except OSError as error:
        typer.secho(f"error: cannot reach Postgres: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def migrate_command(dsn: Dsn = None) -> None:
    """Apply the pending schema migrations."""
    applied = _with_connection(dsn, lambda conn: migrate(dsn or InfraSettings().postgres_dsn))
    typer.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@user_app.command("create")
def user_create(email: str, dsn: Dsn = None) -> None:
    """Create a user (or show the existing one's id) and print it as JSON."""
    user_id = _with_connection(dsn, lambda conn: accounts.create_user(conn, email))
    typer.echo(json.dumps({"user_id": user_id, "email": email.strip().lower()}))


@admin_app.command("deposit")
def deposit(
    email: str,
    asset: str,
    amount: Annotated[str, typer.Argument(help="Decimal string, e.g. 1000.5")],
    external_id: Annotated[
        str | None, typer.Option("--external-id", help="Idempotency key (default: random)")
    ] = None,
    dsn: Dsn = None,
) -> None:
    """Credit AMOUNT of ASSET to the user's available balance (idempotent on --external-id)."""
    import uuid

    reference = external_id or f"admin-{uuid.uuid4()}"

    async def run(conn: asyncpg.Connection) -> accounts.Transfer:
        user_id = await accounts.user_id_by_email(conn, email)
        precision = await accounts.asset_precision(conn, asset)
        units = parse_units(amount, asset_step(precision), field="amount")
        return await accounts.deposit(conn, user_id, asset, units, reference)

    transfer = _with_connection(dsn, run)
    typer.echo(
        json.dumps(
            {
                "deposit_id": transfer.id,
                "external_id": transfer.external_id,
                "user_id": transfer.user_id,
                "asset": transfer.asset,
                "amount": amount,
                "created": transfer.created,
            }
        )
    )


@apikey_app.command("create")
def apikey_create(
    email: str,
    dsn: Dsn = None,
    label: Annotated[str, typer.Option("--label", help="A name for the key.")] = "",
    permission: Annotated[
        list[str] | None,
        typer.Option("--permission", help="read, trade, withdraw (repeatable; read+trade)."),
    ] = None,
    ed25519_public_key: Annotated[
        Path | None,
        typer.Option("--ed25519-public-key", help="PEM file: an Ed25519 key instead of HMAC."),
    ] = None,
) -> None:
    """Create an API key for the user; prints JSON with `api_key` and (HMAC) `secret`."""
    pem = ed25519_public_key.read_text() if ed25519_public_key else None

    async def run(conn: asyncpg.Connection) -> apikeys.Created:
        user_id = await accounts.user_id_by_email(conn, email)
        return await apikeys.create(
            conn, SecretBox(), user_id, label=label, permissions=permission, public_key_pem=pem
        )

    created = _with_connection(dsn, run)
    typer.echo(json.dumps({"api_key": created.api_key, "secret": created.secret}))


def _withdrawal_json(request: accounts.WithdrawalRequest) -> dict[str, object]:
    return {
        "withdrawal_id": request.id,
        "user_id": request.user_id,
        "asset": request.asset,
        "amount_units": str(request.amount),
        "address": request.address,
        "status": request.status.value,
        "reason": request.reason,
        "changed": request.changed,
    }


def _print_withdrawal(request: accounts.WithdrawalRequest) -> None:
    typer.echo(json.dumps(_withdrawal_json(request)))


@withdrawal_app.command("list")
def withdrawal_list(
    dsn: Dsn = None,
    status: Annotated[
        str | None, typer.Option("--status", help="PENDING, COMPLETED or REJECTED (default: all)")
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Only this user's.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
) -> None:
    """Withdrawal requests, newest first, one JSON object per line."""
    if status is not None and status not in {s.value for s in WithdrawalStatus}:
        typer.secho(f"error: unknown status {status!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)

    async def run(conn: asyncpg.Connection) -> list[accounts.WithdrawalRequest]:
        user_id = await accounts.user_id_by_email(conn, email) if email else None
        wanted = WithdrawalStatus(status) if status else None
        return await accounts.withdrawal_requests(conn, user_id, status=wanted, limit=limit)

    for request in _with_connection(dsn, run):
        typer.echo(json.dumps({k: v for k, v in _withdrawal_json(request).items()
                               if k != "changed"}))  # fmt: skip


@withdrawal_app.command("complete")
def withdrawal_complete(withdrawal_id: int, dsn: Dsn = None) -> None:
    """Complete a PENDING withdrawal request: its locked funds leave the exchange.
    Idempotent; a rejected request cannot be completed."""
    _print_withdrawal(
        _with_connection(dsn, lambda conn: accounts.complete_withdrawal(conn, withdrawal_id))
    )


@withdrawal_app.command("reject")
def withdrawal_reject(
    withdrawal_id: int,
    dsn: Dsn = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Shown to the user.")] = None,
) -> None:
    """Reject a PENDING withdrawal request: its locked funds go back to the user's available
    balance. Idempotent; a completed request cannot be rejected."""
    _print_withdrawal(
        _with_connection(dsn, lambda conn: accounts.reject_withdrawal(conn, withdrawal_id, reason))
    )
