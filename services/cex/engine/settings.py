"""The engine service's configuration, from environment variables.

===============================  ============================================================
``CEX_MARKET_FILE``              the market's manifest (a ``Market`` YAML); default
                                 ``examples/<market>.yaml`` of the checkout (local stack)
``CEX_MARKET_PARTITION``         the market's partition index in ``orders`` and ``executions``
                                 (required: the operator / provisioning allocates it)
``CEX_ENGINE_BATCH_MAX``         most commands in one Kafka transaction (a transaction takes
                                 what is waiting, up to this; it never waits for more)
``CEX_ENGINE_TXN_RETRY_MS``      how soon a transaction begun while the previous one's commit
                                 markers are still being written is retried (default 2;
                                 aiokafka's own 20 ms dominated the engine's latency)
``CEX_ENGINE_SNAPSHOT_EVERY``    snapshot after this many commands ...
``CEX_ENGINE_SNAPSHOT_INTERVAL_S``  ... or this many seconds with at least one command
``CEX_ENGINE_OFFSET_REFRESH_S`` with no input for this long, commit the input offset again
                                 (an offsets-only transaction), so that the group's offset
                                 never outlives Kafka's ``offsets.retention.minutes``
                                 (default 7 days) while the market is quiet
``CEX_ENGINE_VERIFY_OUTPUT``     at recovery, check the replayed state against the last
                                 committed event of ``executions`` (default on)
``CEX_METRICS_PORT``             probes and metrics (default 9400)
===============================  ============================================================

Kafka, Redis and topic names come from :class:`cex.infra.settings.InfraSettings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_METRICS_PORT = 9400


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    market_file: Path | None = None
    market_partition: int | None = None
    engine_batch_max: int = 5000
    engine_txn_retry_ms: float = 2.0
    engine_snapshot_every: int = 100_000
    engine_snapshot_interval_s: float = 30.0
    engine_offset_refresh_s: float = 3600.0
    engine_verify_output: bool = True


def transactional_id(orders_topic: str, market: str) -> str:
    """One per market (and input topic, so that stacks can share a Kafka cluster): a second
    engine for the market fences the first."""
    return f"{orders_topic}.engine.{market}"


def group_id(orders_topic: str, market: str) -> str:
    """The consumer group whose committed offset on the market's partition of ``orders`` is
    advanced inside the engine's transactions (no member ever joins it)."""
    return f"{orders_topic}.engine.{market}"
