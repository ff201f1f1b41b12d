"""The ``cex`` command: thin entry points that import their module only when called."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from cex.admin import admin_app, migrate_command

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="cex exchange",
)
stack_app = typer.Typer(no_args_is_help=True, help="The local stack: infrastructure and services.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures as JSON.")
app.add_typer(stack_app, name="stack")
app.add_typer(bench_app, name="bench")
app.add_typer(admin_app, name="admin")
candles_app = typer.Typer(no_args_is_help=True, help="Candles (klines): rebuild and check.")
app.add_typer(candles_app, name="candles")
app.command("migrate")(migrate_command)

# `cex serve <service>`: each service module exposes `serve(market: str | None) -> None`.
SERVICES = {
    "api": "cex.api.service",
    "trading": "cex.trading.service",
    "relay": "cex.relay.service",
    "settlement": "cex.settlement.service",
    "lifecycle": "cex.lifecycle.service",
    "engine": "cex.engine.service",
    "candles": "cex.candles.aggregator",
    "candle-persist": "cex.candles.persister",
    "gateway": "cex.gateway.service",
}


@app.command("serve")
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    market: Annotated[
        str | None, typer.Option("--market", help="Market name (engine only), e.g. btc-usdt")
    ] = None,
) -> None:
    """Run one service in the foreground (configured by CEX_* environment variables)."""
    import importlib

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    importlib.import_module(SERVICES[service]).serve(market=market)


@contextmanager
def _stack_errors() -> Iterator[None]:
    """A stack failure is the user's to fix: print its message, not a traceback."""
    from cex.stack.components import StackError

    try:
        yield
    except StackError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


@app.command("check")
def check(
    dsn: Annotated[
        str | None, typer.Option("--dsn", help="Postgres DSN (default: CEX_POSTGRES_DSN).")
    ] = None,
    snapshot: Annotated[
        list[Path] | None,
        typer.Option("--snapshot", help="An engine snapshot file to compare with the DB."),
    ] = None,
) -> None:
    """Audit the ledger invariants; print each violation, exit 1 if any."""
    import asyncio

    from cex.audit.check import run
    from cex.infra.settings import InfraSettings

    snapshots = [path.read_bytes() for path in snapshot or []]
    violations = asyncio.run(run(dsn or InfraSettings().postgres_dsn, snapshots))
    for violation in violations:
        typer.echo(str(violation))
    if violations:
        typer.secho(f"{len(violations)} violation(s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo("ok: every invariant holds")


@candles_app.command("rebuild")
def candles_rebuild(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; print each difference, exit 1 if any.")
    ] = False,
    market: Annotated[
        str | None, typer.Option("--market", help="Only this market, e.g. btc-usdt.")
    ] = None,
) -> None:
    """Recompute every candle from the trades table (CEX_POSTGRES_DSN) and store it."""
    import asyncio

    from cex.candles.rebuild import rebuild
    from cex.infra.settings import InfraSettings

    differences = asyncio.run(rebuild(InfraSettings(), check=check, market=market))
    for difference in differences:
        typer.echo(str(difference))
    if check:
        if differences:
            typer.secho(f"{len(differences)} difference(s)", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        typer.echo("ok: every stored candle equals its trades")
    else:
        typer.echo(f"rebuilt; {len(differences)} candle(s) differed before")


@stack_app.command("up")
def stack_up(
    infra_only: Annotated[
        bool, typer.Option("--infra-only", help="Start Kafka, Postgres and Redis only.")
    ] = False,
) -> None:
    """Install what is missing, start the stack, print and write the endpoints."""
    from cex.stack import supervisor

    with _stack_errors():
        endpoints = supervisor.up(infra_only=infra_only)
    for name, address in endpoints.items():
        typer.echo(f"{name:<24} {address}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop everything `cex stack up` started; check no port of ours is left open."""
    from cex.stack import supervisor

    with _stack_errors():
        supervisor.down()


@stack_app.command("status")
def stack_status() -> None:
    """Show each component's state as JSON."""
    from cex.stack import supervisor

    typer.echo(json.dumps(supervisor.status(), indent=2))


@stack_app.command("install")
def stack_install() -> None:
    """Install (and cache) Kafka, Postgres and Redis without starting them."""
    from cex.stack import components

    with _stack_errors():
        components.install_all()


@bench_app.command("settlement")
def bench_settlement(
    trades: Annotated[int, typer.Option("--trades", help="Trades to settle.")] = 100_000,
    batch: Annotated[int, typer.Option("--batch", help="Most events per batch.")] = 5_000,
    users: Annotated[int, typer.Option("--users", help="Makers, and as many takers.")] = 1_000,
    fanout: Annotated[int, typer.Option("--fanout", help="Trades per maker order.")] = 10,
    rate: Annotated[
        int, typer.Option("--rate", help="Orders/s of the paced phase (0: none).")
    ] = 2_000,
    seconds: Annotated[float, typer.Option("--seconds", help="Paced phase length.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Trades settled per second from Kafka into Postgres, batch latency, and Kafka commit
    → settled at a paced rate (local stack)."""
    from cex.bench import settlement as bench

    result = bench.run(trades, batch, users, fanout, rate, seconds)
    typer.echo(json.dumps(result) if as_json else bench.describe(result))


@bench_app.command("engine")
def bench_engine(
    ops: Annotated[int, typer.Option("--ops", help="Operations per workload.")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The matching core on one core: exchange-core's mix and deep sweeps."""
    from cex.bench import engine

    for result in engine.run(ops=ops):
        typer.echo(json.dumps(result) if as_json else engine.describe(result))


@bench_app.command("orders")
def bench_orders(
    orders: Annotated[int, typer.Option("--orders", help="Orders per mode.")] = 20_000,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Concurrent clients.")] = 128,
    users: Annotated[int, typer.Option("--users", help="Distinct users.")] = 1_000,
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="store, http, http-batch (repeatable; default all)."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Trading API processes (http mode).")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON summary object.")] = False,
) -> None:
    """Orders accepted per second by the trading API, funds locked (local Postgres)."""
    from cex.bench import orders as bench

    summary = bench.run(orders, concurrency, users, mode or list(bench.MODES), workers)
    typer.echo(json.dumps(summary) if as_json else bench.describe(summary))


@bench_app.command("api")
def bench_api(
    orders: Annotated[int, typer.Option("--orders", help="Orders per response type.")] = 20_000,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Connections.")] = 64,
    users: Annotated[int, typer.Option("--users", help="Distinct accounts.")] = 200,
    resp_type: Annotated[
        list[str] | None, typer.Option("--resp-type", help="ACK and/or FULL (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Signed order placements per second through the public API (local stack up)."""
    from cex.bench import api as bench

    for result in bench.run(orders, concurrency, users, resp_type or ["ACK", "FULL"]):
        typer.echo(json.dumps(result) if as_json else bench.describe(result))


@bench_app.command("engine-service")
def bench_engine_service(
    commands: Annotated[
        int, typer.Option("--commands", help="Commands in the throughput phase.")
    ] = 200_000,
    batch: Annotated[
        list[int] | None, typer.Option("--batch", help="Batch size to try (repeatable).")
    ] = None,
    rate: Annotated[
        float, typer.Option("--rate", help="Commands/s in the latency phase.")
    ] = 2000.0,
    market: Annotated[str, typer.Option("--market", help="Example market.")] = "btc-usdt",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The engine service on the real local Kafka: orders → committed executions."""
    from cex.bench import engine_service

    results = engine_service.run(
        market=market, commands=commands, batches=tuple(batch or (500, 2000, 5000)), rate=rate
    )
    for result in results:
        typer.echo(json.dumps(result) if as_json else engine_service.describe(result))


@bench_app.command("ws")
def bench_ws(
    clients: Annotated[int, typer.Option("--clients", help="Concurrent clients.")] = 2000,
    rate: Annotated[float, typer.Option("--rate", help="Depth + trade updates/s.")] = 10.0,
    seconds: Annotated[float, typer.Option("--seconds", help="Measured duration.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """WebSocket clients on depth + trades of one busy market (a gateway of its own)."""
    from cex.bench import ws as bench

    result = bench.run(clients, rate, seconds)
    typer.echo(json.dumps(result) if as_json else bench.describe(result))


@bench_app.command("e2e")
def bench_e2e(
    rate: Annotated[float, typer.Option("--rate", help="Orders offered per second.")] = 500.0,
    seconds: Annotated[float, typer.Option("--seconds", help="Seconds per rate.")] = 10.0,
    users: Annotated[int, typer.Option("--users", help="Sellers, and as many buyers.")] = 50,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Double the rate until the goal is missed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    trading_url: Annotated[
        str | None,
        typer.Option("--trading-url", help="The trading API (default: the local stack's)."),
    ] = None,
) -> None:
    """An order's whole path hop by hop at a fixed rate: trading API → relay → engine →
    settlement (local stack up; Kafka, Postgres and Redis from the CEX_* settings)."""
    from cex.bench import e2e as bench

    result = bench.run(rate, seconds, users, sweep, trading_url=trading_url)
    typer.echo(json.dumps(result) if as_json else bench.describe(result))


@bench_app.command("candles")
def bench_candles(
    rate: Annotated[int, typer.Option("--rate", help="Orders per second.")] = 500,
    seconds: Annotated[float, typer.Option("--seconds", help="Paced phase length.")] = 10.0,
    resting: Annotated[
        float, typer.Option("--resting", help="Share of orders resting, not trading [0, 1).")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The candle aggregator's CPU per order and commit → kline published latency at a
    paced rate (local stack's Kafka, Redis and Postgres; a topic and prefix of its own)."""
    from cex.bench import candles as bench

    result = bench.run(rate, seconds, resting)
    typer.echo(json.dumps(result) if as_json else bench.describe(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()


@bench_app.command("web")
def bench_web(
    symbol: Annotated[str, typer.Option("--symbol", help="Market of the page.")] = "BTCUSDT",
    runs: Annotated[int, typer.Option("--runs", help="Page loads (fresh contexts).")] = 10,
    marker_interval: Annotated[
        float, typer.Option("--marker-interval", help="Seconds between marker bids.")
    ] = 0.1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The trading page: first-load JS of the production build, and in headless Chromium
    FCP and the time until the order book is live (local stack up)."""
    from cex.bench import web as bench

    result = bench.run(symbol, runs, marker_interval)
    typer.echo(json.dumps(result) if as_json else bench.describe(result))
