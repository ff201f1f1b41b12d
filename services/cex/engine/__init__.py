"""The matching engine service: one process per market around ``cex.core.matching``.

``cex serve engine --market btc-usdt`` runs :func:`cex.engine.service.serve`. See
:mod:`cex.engine.runner` for the Kafka loop, exactly-once and recovery, and
:mod:`cex.infra.redis` for the Redis keys and channels it writes.
"""
