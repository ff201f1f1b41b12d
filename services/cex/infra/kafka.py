"""Kafka helpers shared by every service: topic administration, client factories, tracing
headers.

Topics
------
:func:`ensure_topics` creates the topics that are missing and grows the partition count of
those that have too few. Partition counts only ever grow (DESIGN §4): a request for fewer
partitions than a topic has changes nothing.

Clients
-------
:func:`producer` and :func:`consumer` build aiokafka clients from
:class:`~cex.infra.settings.InfraSettings`. Consumers never auto-commit and read with
``isolation_level=read_committed`` unless told otherwise: downstream of the engine only
committed transactions exist. Pass ``transactional_id`` to :func:`producer` for a
transactional producer (a second producer with the same id fences the first).

For throughput, a service that produces many records at once should fill a
``producer.create_batch()`` and hand it to ``producer.send_batch`` (see
:func:`send_records`) instead of awaiting ``send`` once per record.

Tracing
-------
W3C trace context travels in the ``traceparent`` (and optional ``tracestate``) record
header. :func:`trace_headers` copies them from an input record's headers so that an output
record continues the same trace; :func:`new_traceparent` starts one. No OpenTelemetry SDK
is required for this passthrough.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from cex.infra.settings import InfraSettings

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "Headers",
    "consumer",
    "ensure_topics",
    "new_traceparent",
    "partition_counts",
    "producer",
    "send_records",
    "set_concurrent_transactions_backoff",
    "trace_headers",
]

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

#: Kafka record headers as aiokafka gives and takes them.
Headers = Sequence[tuple[str, bytes]]


# --------------------------------------------------------------------------- admin


async def partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Partition count of each existing topic among ``topics`` (missing ones are absent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await _partition_counts(admin, list(topics))
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(topics)
    counts: dict[str, int] = {}
    for topic in described:
        if topic["error_code"] == 0:
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


async def ensure_topics(
    bootstrap: str, partitions: Mapping[str, int], *, replication_factor: int = 1
) -> dict[str, int]:
    """Make every topic in ``partitions`` (name → minimum partition count) exist with at
    least that many partitions. Returns the resulting counts. Idempotent and safe to run
    concurrently from several processes."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        counts = await _partition_counts(admin, list(partitions))
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=replication_factor)
            for name, count in partitions.items()
            if name not in counts
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *_ in response.topic_errors:
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise for_code(code)(f"could not create topic {name}")
                log.info("created topic %s", name)
        counts = await _partition_counts(admin, list(partitions))
        grow = {
            name: NewPartitions(total_count=wanted)
            for name, wanted in partitions.items()
            if counts.get(name, 0) < wanted
        }
        if grow:
            try:
                await admin.create_partitions(grow)
            except KafkaError as exc:
                # Another process may have grown it first; only a short count is an error.
                log.info("create_partitions: %s", exc)
            counts = await _partition_counts(admin, list(partitions))
        short = {n: c for n, c in counts.items() if c < partitions[n]}
        if short or set(counts) != set(partitions):
            raise RuntimeError(f"topics still short of partitions: {partitions} vs {counts}")
        return counts
    finally:
        await admin.close()


# --------------------------------------------------------------------------- clients


def producer(
    settings: InfraSettings, *, transactional_id: str | None = None, **options: Any
) -> AIOKafkaProducer:
    """An (unstarted) producer. Idempotent always; transactional with ``transactional_id``.
    Large batches and requests by default: our records are small and come in bursts."""
    defaults: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "max_batch_size": 1 << 20,
        "max_request_size": 8 << 20,
        "linger_ms": 0,
    }
    if transactional_id is not None:
        defaults["transactional_id"] = transactional_id
    return AIOKafkaProducer(**(defaults | options))


def consumer(
    settings: InfraSettings, *, group_id: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """An (unstarted) consumer with no subscription: call ``assign`` or ``subscribe``.
    ``read_committed``, no auto-commit, start from the earliest offset by default."""
    defaults: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 8 << 20,
        "fetch_max_bytes": 32 << 20,
    }
    return AIOKafkaConsumer(**(defaults | options))


def set_concurrent_transactions_backoff(ms: float) -> None:
    """How soon aiokafka retries a transaction's first ``AddPartitionsToTxn`` answered
    ``CONCURRENT_TRANSACTIONS``, for every transactional producer of the process.

    The coordinator answers that while it still writes the previous transaction's commit
    markers, which it does after answering ``EndTxn``: a producer that begins its next
    transaction at once (a busy engine) meets it almost every time. aiokafka then waits a
    fixed 20 ms (``BACKOFF_OVERRIDE``, KAFKA-5477's value; its ``retry_backoff_ms`` is not
    used there), more than the markers take on a local broker. Raises if this aiokafka
    no longer has the knob, so an upgrade cannot silently bring the 20 ms back.
    """
    from aiokafka.producer import sender

    if not isinstance(getattr(sender, "BACKOFF_OVERRIDE", None), float):
        raise RuntimeError("aiokafka.producer.sender.BACKOFF_OVERRIDE is gone: check the upgrade")
    sender.BACKOFF_OVERRIDE = ms / 1000


async def send_records(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: Iterable[tuple[bytes | None, bytes, Headers | None]],
) -> list[Any]:
    """Queue ``(key, value, headers)`` records for one partition as few batches as possible.

    Returns the delivery futures (await them, or commit the transaction, which flushes).
    Record order is kept: batches for one partition are sent in the order queued.
    """
    futures = []
    batch = producer.create_batch()
    for key, value, headers in records:
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


# --------------------------------------------------------------------------- tracing


def trace_headers(headers: Headers | None) -> list[tuple[str, bytes]]:
    """The W3C trace context headers among ``headers``, to copy onto an output record."""
    if not headers:
        return []
    return [(k, v) for k, v in headers if k in (TRACEPARENT, TRACESTATE)]


def new_traceparent(sampled: bool = True) -> tuple[str, bytes]:
    """A fresh ``traceparent`` header (version 00, random trace and span ids)."""
    trace_id = os.urandom(16).hex()
    span_id = os.urandom(8).hex()
    value = f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"
    return TRACEPARENT, value.encode()
