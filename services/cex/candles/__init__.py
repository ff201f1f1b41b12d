"""Candle services: the aggregator (``cex serve candles``: ``executions`` → Redis and
pub/sub), the persister (``cex serve candle-persist``: Redis → Postgres) and
``cex candles rebuild`` (the ``trades`` table → Postgres). The rules are
:mod:`cex.core.candles`; the Redis keys and payloads :mod:`cex.infra.redis`."""
