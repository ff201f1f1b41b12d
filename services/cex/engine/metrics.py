"""Prometheus metrics of the engine service (label ``market``: the Market resource name)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter(
    "cex_engine_commands", "Commands applied and committed (live, not replayed)", ["market"]
)
MALFORMED = Counter(
    "cex_engine_malformed_commands", "Input records that did not decode", ["market"]
)
EVENTS = Counter("cex_engine_events", "Events produced to executions and committed", ["market"])
REPLAYED = Counter("cex_engine_replayed_commands", "Commands replayed during recovery", ["market"])
BATCH_SIZE = Histogram(
    "cex_engine_batch_size",
    "Commands per Kafka transaction",
    ["market"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000),
)
TXN_SECONDS = Histogram(
    "cex_engine_transaction_seconds",
    "Kafka transaction latency: begin to committed (produce, offsets, commit)",
    ["market"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
COMMAND_SECONDS = Histogram(
    "cex_engine_command_seconds",
    "Time a fetched batch of commands spends in the engine until its events are committed"
    " (applying, waiting for the transaction in flight, its own transaction)",
    ["market"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
SNAPSHOT_AGE = Gauge(
    "cex_engine_snapshot_age_seconds", "Seconds since the last snapshot was written", ["market"]
)
SNAPSHOT_SECONDS = Histogram(
    "cex_engine_snapshot_seconds", "Time to serialize and write one snapshot", ["market"]
)
INPUT_LAG = Gauge(
    "cex_engine_input_lag", "Committed commands in orders not yet applied (records)", ["market"]
)
INPUT_OFFSET = Gauge("cex_engine_input_offset", "Next input offset to apply", ["market"])
NEXT_SEQ = Gauge("cex_engine_next_seq", "seq of the next event", ["market"])
RECOVERY_SECONDS = Gauge("cex_engine_recovery_seconds", "Duration of the last recovery", ["market"])
REDIS_ERRORS = Counter(
    "cex_engine_redis_errors", "Failed Redis writes (book, pub/sub, snapshot)", ["market"]
)
OFFSET_REFRESHES = Counter(
    "cex_engine_offset_refreshes",
    "Offsets-only transactions of a quiet market (they keep its committed offset alive)",
    ["market"],
)
