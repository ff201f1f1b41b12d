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

Fairness: a batch (:func:`next_batch`) gives every market with waiting commands an equal
share, each market's oldest first, so one market's backlog never holds back another's
commands. Published rows are kept for a retention period, then deleted in bounded rounds
(:func:`prune_published`); Kafka keeps every command, and the rows are numbered by
`markets.next_command_seq`, never by what is left in the table.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from cex.core.events import Command, command_kind, encode
from cex.infra.transactions import retrying

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


# The markets with waiting commands share the batch equally (at least one command each);
# within a market, command order. A market with less waiting than its share leaves that
# part of the batch unused: the next batch follows at once. Each market's rows come from
# its own range of the `outbox_unpublished` index, so a large backlog costs only its share.
# Commands up to a market's `sent` number are skipped: the publisher sent them already and
# their rows are being marked.
_NEXT_BATCH = """
WITH sent AS (
    SELECT * FROM unnest($2::text[], $3::bigint[]) s(market, seq)
), waiting AS (
    SELECT m.name, coalesce(s.seq, 0) AS after FROM markets m
    LEFT JOIN sent s ON s.market = m.name
    WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.market = m.name AND NOT o.published
                  AND o.command_seq > coalesce(s.seq, 0))
), share AS (
    SELECT greatest(1, $1::int / greatest(count(*), 1)) AS n FROM waiting
)
SELECT b.market, b.command_seq, b.payload,
       extract(epoch FROM now() - b.created_at)::float8 AS age_s
FROM waiting w CROSS JOIN share CROSS JOIN LATERAL (
    SELECT o.market, o.command_seq, o.payload, o.created_at FROM outbox o
    WHERE o.market = w.name AND NOT o.published AND o.command_seq > w.after
    ORDER BY o.command_seq LIMIT share.n
) b
ORDER BY b.market, b.command_seq
"""


async def next_batch(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, sent: Mapping[str, int] | None = None
) -> list[asyncpg.Record]:
    """The next unpublished commands, at most about `limit` (one more per waiting market
    when there are more markets than `limit`): `market`, `command_seq`, `payload` and
    `age_s` (seconds since the row was written), by market and command number. Commands
    numbered up to `sent[market]` are left out (sent, their rows not marked yet)."""
    sent = sent or {}
    rows: list[asyncpg.Record] = await conn.fetch(
        _NEXT_BATCH, limit, list(sent), list(sent.values())
    )
    return rows


async def mark_published(
    conn: asyncpg.Connection | asyncpg.Pool, rows: list[asyncpg.Record]
) -> None:
    """Mark `rows` (from :func:`next_batch`) as published, once Kafka committed them.
    Idempotent, so a conflict or a lost connection is retried (`cex.infra.transactions`)."""
    async for attempt in retrying(idempotent=True):
        with attempt:
            await conn.execute(
                "UPDATE outbox o SET published = true FROM unnest($1::text[], $2::bigint[])"
                " p(market, seq) WHERE o.market = p.market AND o.command_seq = p.seq",
                [r["market"] for r in rows],
                [r["command_seq"] for r in rows],
            )


# Each round looks at the first `batch` rows (lowest numbers) of one market's outbox, a
# range of the primary key, and deletes the published ones older than the retention.
# Published rows are a prefix of each market's numbers, so that is where they are; looking
# no further keeps a round short when nothing is old enough. Only published rows are
# touched, which no publisher writes again: deleting them never waits for, or holds up,
# publishing.
_HEAD = """
SELECT min(command_seq) AS first, max(command_seq) AS last FROM (
    SELECT command_seq FROM outbox WHERE market = $1 ORDER BY command_seq LIMIT $2
) head
"""
# A range (not `<=`), which the planner reads as narrow: an index scan, even in a generic
# plan of the prepared statement.
_PRUNE_RANGE = """
DELETE FROM outbox WHERE market = $1 AND command_seq BETWEEN $2 AND $3
  AND published AND created_at < now() - make_interval(secs => $4)
"""


async def prune_published(pool: asyncpg.Pool, retention_s: float, *, batch: int = 5000) -> int:
    """Delete published rows written more than `retention_s` seconds ago, market by market,
    in rounds of at most `batch` rows, each its own short statement, until a round finds
    none; returns how many were deleted."""
    deleted = 0
    for market in await pool.fetch("SELECT name FROM markets ORDER BY name"):
        while True:
            head = await pool.fetchrow(_HEAD, market["name"], batch)
            if head is None or head["first"] is None:
                break
            async for attempt in retrying(idempotent=True):
                with attempt:
                    status = await pool.execute(
                        _PRUNE_RANGE,
                        market["name"],
                        head["first"],
                        head["last"],
                        float(retention_s),
                    )
            count = int(status.split()[-1])  # "DELETE <n>"
            if count == 0:
                break
            deleted += count
    return deleted
