"""The outbox between Postgres and the `orders` topic, shared by the relay and the
lifecycle worker.

Exactly-once publication without a distributed transaction:

* One publisher at a time: whoever holds the Postgres advisory lock `PUBLISHER_LOCK`
  (a session lock: it goes away with its connection when a process dies).
* Its Kafka producer is transactional with the id `publisher_transactional_id(orders_topic)`,
  so a new holder fences any previous one that might still be sending (its open transaction
  is aborted; consumers read `read_committed`). The id names the `orders` topic: stacks that
  share a Kafka cluster (a test session beside `make up`) never fence each other.
* Every record carries its market command number in the `cex-command-seq` header. After
  taking the lock and fencing, the holder reads the last committed record of each market's
  partition and marks every outbox row up to that number as published
  (:func:`reconcile`): rows sent just before a crash, but not yet marked, are not sent twice.
* The command numbers are allocated under the market row's lock in the transaction that
  writes the row, so their order is the commit order and rows are published in it.
"""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from cex.core.events import Command, command_kind, encode

PUBLISHER_LOCK = 0x63657801  # "cex\1"
COMMAND_SEQ_HEADER = "cex-command-seq"
OUTBOX_CHANNEL = "cex_outbox"


def publisher_transactional_id(orders_topic: str) -> str:
    """The outbox publisher's Kafka transactional id: one per `orders` topic."""
    return f"{orders_topic}.outbox-publisher"


async def append_command(
    conn: asyncpg.Connection, market: str, command: Command, *, order_id: int | None = None
) -> int:
    """Queue one command for the engine of `market` (the registry name; the command names
    the market by its symbol); returns its command number.

    Call inside the caller's transaction: the number is taken under the market row's lock,
    so commands are published in commit order, and the row is written (or not) with the
    rest of the transaction. The relay is woken by a notification sent at commit."""
    seq = await conn.fetchval(
        "UPDATE markets SET next_command_seq = next_command_seq + 1 WHERE name = $1"
        " RETURNING next_command_seq - 1",
        market,
    )
    if seq is None:
        raise LookupError(f"market {market!r} is not registered")
    await conn.execute(
        "INSERT INTO outbox (market, command_seq, kind, order_id, payload)"
        " VALUES ($1, $2, $3, $4, $5)",
        market,
        seq,
        command_kind(command).value,
        order_id,
        encode(command),
    )
    await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    return int(seq)


async def last_published_seq(consumer: AIOKafkaConsumer, topic: str, partition: int) -> int:
    """The command number of the last committed record in the partition (0 if none).

    Reads backwards in growing windows: the tail of a transactional partition ends with
    control records (commit markers), which are offsets without records."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    window = 16
    while True:
        start = max(0, end - window)
        consumer.seek(tp, start)
        last = None
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.offset < end:
                    last = record
        if last is not None:
            for key, value in last.headers or ():
                if key == COMMAND_SEQ_HEADER:
                    return int(value)
            raise RuntimeError(f"{topic}[{partition}] offset {last.offset} has no command number")
        if start == 0:
            return 0
        window *= 4


async def reconcile(
    conn: asyncpg.Connection, consumer: AIOKafkaConsumer, topic: str, partitions: dict[str, int]
) -> dict[str, int]:
    """Mark as published every outbox row already in Kafka; returns market → last seq.
    Call only while holding `PUBLISHER_LOCK`, after fencing older producers."""
    last: dict[str, int] = {}
    for market, partition in sorted(partitions.items()):
        seq = await last_published_seq(consumer, topic, partition)
        last[market] = seq
        if seq:
            await conn.execute(
                "UPDATE outbox SET published = true"
                " WHERE market = $1 AND command_seq <= $2 AND NOT published",
                market,
                seq,
            )
    return last
