"""``cex serve engine --market NAME``: the matching engine of one market.

Configuration: :mod:`cex.engine.settings` (market manifest and partition, batching,
snapshots) and :class:`cex.infra.settings.InfraSettings` (Kafka, Redis, topics). Probes
and metrics on ``CEX_METRICS_PORT`` (default 9400): ``/readyz`` answers 200 only once
recovery is over. The loop, exactly-once and recovery: :mod:`cex.engine.runner`.
"""

from __future__ import annotations

from cex.core.errors import MarketConfigError
from cex.engine.runner import EngineRunner
from cex.engine.settings import DEFAULT_METRICS_PORT, EngineSettings
from cex.infra.manifests import find_market_file, load_market
from cex.infra.runtime import WorkerContext, metrics_port, run_worker
from cex.infra.settings import InfraSettings


def build(market: str) -> EngineRunner:
    settings = EngineSettings()
    path = settings.market_file or find_market_file(market)
    config = load_market(path)
    if config.name != market:
        raise MarketConfigError(f"{path} describes market {config.name!r}, not {market!r}")
    if settings.market_partition is None:
        raise MarketConfigError(
            "CEX_MARKET_PARTITION is not set: the market's partition index (allocated by "
            "provisioning, recorded in the Market status)"
        )
    return EngineRunner(config, settings.market_partition, InfraSettings(), settings)


def serve(market: str | None = None) -> None:
    if not market:
        raise SystemExit("cex serve engine needs --market NAME (e.g. btc-usdt)")
    runner = build(market)

    async def main(ctx: WorkerContext) -> None:
        await runner.run(ctx)

    run_worker(f"engine-{market}", main, port=metrics_port(DEFAULT_METRICS_PORT))
