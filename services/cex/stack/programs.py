"""The services `cex stack up` runs beside the infrastructure, as supervisord programs.

Shared services, one `cex serve …` process each: the public API on `API_PORT` (with the dev
faucet on, OTP codes written to `.cex/otp.jsonl` instead of mailed, and an operator token in
`.cex/operator-token`), the trading API on `TRADING_PORT`, and the relay, settlement and
lifecycle workers and the candle aggregator and persister, with their probes and metrics
on `WORKER_PORTS`, and the WebSocket gateway on `GATEWAY_PORT` (streams, probes and metrics
on one port; per-IP limits raised, every local client being 127.0.0.1), and the web UI on
``WEB_PORT`` (its production build, rebuilt when its sources changed, served by its
``server.mjs``, which proxies ``/api``, ``/cex``, ``/ws-api`` to the API and ``/ws``,
``/stream`` to the gateway; see :mod:`cex.stack.web`).

Matching engines: one program ``engine-<market>`` per example market (``examples/*.yaml``).
Each market is provisioned first by :func:`cex.infra.provisioning.provision_market`, the
code path the operator uses too (registry row and partition index in Postgres, topics with
enough partitions, market metadata in Redis); the engine gets its manifest and partition
through ``CEX_MARKET_FILE`` / ``CEX_MARKET_PARTITION``. The manifest it gets is written from
the market's *genesis* spec (``.cex/markets/<market>.yaml``): an engine replaying from the
first command must start from the fees and status of that time; an edited example reaches a
running market as commands instead (see :mod:`cex.infra.registry`). Engines' probes and
metrics listen on ``ENGINE_BASE_PORT + i`` for the i-th market in name order.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cex.infra.manifests import example_markets, market_document
from cex.infra.settings import InfraSettings
from cex.stack.components import Program
from cex.stack.settings import StackSettings
from cex.stack.web import program as web_program

if TYPE_CHECKING:
    from cex.infra.registry import Registration

#: First probe/metrics port of the engines (far from the components' defaults).
ENGINE_BASE_PORT = 19400
TRADING_PORT = 18100
API_PORT = 18200
GATEWAY_PORT = 18300
WORKER_PORTS = {
    "relay": 18101,
    "settlement": 18102,
    "lifecycle": 18103,
    "candles": 18104,
    "candle-persist": 18105,
}


def _infra(settings: StackSettings) -> InfraSettings:
    return InfraSettings(
        kafka_bootstrap=settings.kafka_bootstrap,
        postgres_dsn=settings.postgres_dsn,
        redis_url=settings.redis_url,
    )


def _env(settings: StackSettings, **extra: str) -> dict[str, str]:
    infra = _infra(settings)
    return {
        "CEX_ENVIRONMENT": "dev",
        "CEX_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "CEX_POSTGRES_DSN": infra.postgres_dsn,
        "CEX_REDIS_URL": infra.redis_url,
        "CEX_HTTP_HOST": settings.host,
        **extra,
    }


def _operator_token(settings: StackSettings) -> str:
    """The dev stack's operator token: made once, kept in `.cex/operator-token` (0600)."""
    path = settings.root / "operator-token"
    if not path.exists():
        settings.root.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def shared_programs(settings: StackSettings) -> tuple[list[Program], dict[str, str]]:
    cex = str(Path(sys.executable).with_name("cex"))
    host = settings.host
    trading_url = f"http://{host}:{TRADING_PORT}"
    programs = [
        Program(
            "api",
            [cex, "serve", "api"],
            stop_wait_s=20,
            environment=_env(
                settings,
                CEX_API_HOST=host,
                CEX_API_PORT=str(API_PORT),
                CEX_TRADING_URL=trading_url,
                CEX_API_FAUCET_ENABLED="true",
                CEX_API_OTP_OUTBOX=str(settings.root / "otp.jsonl"),
                CEX_API_OPERATOR_TOKEN=_operator_token(settings),
            ),
        ),
        Program(
            "trading",
            [cex, "serve", "trading"],
            stop_wait_s=20,
            environment=_env(settings, CEX_TRADING_HOST=host, CEX_TRADING_PORT=str(TRADING_PORT)),
        ),
    ]
    endpoints = {
        "api": f"http://{host}:{API_PORT}",
        "api-metrics": f"http://{host}:{API_PORT}/metrics",
        "trading": trading_url,
        "trading-metrics": f"http://{host}:{TRADING_PORT}/metrics",
    }
    for name, port in WORKER_PORTS.items():
        programs.append(
            Program(
                name,
                [cex, "serve", name],
                stop_wait_s=30,
                environment=_env(settings, CEX_METRICS_PORT=str(port)),
            )
        )
        endpoints[f"{name}-metrics"] = f"http://{host}:{port}/metrics"
    programs.append(
        Program(
            "gateway",
            [cex, "serve", "gateway"],
            stop_wait_s=20,
            environment=_env(
                settings,
                CEX_GATEWAY_HOST=host,
                CEX_GATEWAY_PORT=str(GATEWAY_PORT),
                CEX_GATEWAY_CONNECTIONS_PER_IP="100000",
                CEX_GATEWAY_ATTEMPTS_PER_IP="1000000",
            ),
        )
    )
    endpoints["ws"] = f"ws://{host}:{GATEWAY_PORT}"
    endpoints["gateway-metrics"] = f"http://{host}:{GATEWAY_PORT}/metrics"
    web = web_program(
        host, endpoints["api"], f"http://{host}:{GATEWAY_PORT}", settings.log_dir / "web-build.log"
    )
    if web is not None:
        programs.append(web[0])
        endpoints["web"] = web[1]
    return programs, endpoints


async def _provision(
    infra: InfraSettings, specs: dict[str, dict[str, Any]]
) -> dict[str, Registration]:
    """Migrate the database, then provision every market in name order."""
    from cex.infra.postgres import migrate
    from cex.infra.provisioning import provision_market

    await migrate(infra.postgres_dsn)
    return {name: await provision_market(infra, name, spec) for name, spec in specs.items()}


def engine_programs(settings: StackSettings) -> tuple[list[Program], dict[str, str]]:
    infra = _infra(settings)
    markets = example_markets()
    specs = {name: yaml.safe_load(path.read_text())["spec"] for name, path in markets.items()}
    registrations = asyncio.run(_provision(infra, specs))
    engine_files = settings.root / "markets"
    engine_files.mkdir(parents=True, exist_ok=True)
    cex = str(Path(sys.executable).with_name("cex"))
    programs: list[Program] = []
    endpoints: dict[str, str] = {}
    for i, (name, registration) in enumerate(registrations.items()):
        port = ENGINE_BASE_PORT + i
        engine_file = engine_files / f"{name}.yaml"
        document = market_document(name, registration.genesis_spec)
        engine_file.write_text(yaml.safe_dump(document, sort_keys=False))
        programs.append(
            Program(
                f"engine-{name}",
                [cex, "serve", "engine", "--market", name],
                stop_wait_s=30,
                environment=_env(
                    settings,
                    CEX_MARKET_FILE=str(engine_file),
                    CEX_MARKET_PARTITION=str(registration.partition),
                    CEX_METRICS_PORT=str(port),
                ),
            )
        )
        endpoints[f"engine-{name}"] = f"http://{settings.host}:{port}/metrics"
    return programs, endpoints


def programs(settings: StackSettings) -> tuple[list[Program], dict[str, str]]:
    """The service programs to run and the endpoints they expose (name → address)."""
    engines, engine_endpoints = engine_programs(settings)
    shared, shared_endpoints = shared_programs(settings)
    return shared + engines, shared_endpoints | engine_endpoints
