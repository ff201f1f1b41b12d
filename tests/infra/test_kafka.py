"""Smoke tests on the real Kafka broker: transactions and read_committed isolation work
on our single-node KRaft configuration (transaction log replication 1, min ISR 1)."""

from __future__ import annotations

import contextlib
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.fixtures import NewTopicFactory


async def _read_all(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        while await consumer.position(partition) < end:
            batch = await consumer.getmany(partition, timeout_ms=2000)
            values += [record.value for record in batch.get(partition, []) if record.value]
        return values
    finally:
        await consumer.stop()


async def test_committed_transaction_is_visible_and_aborted_one_is_not(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic("txn")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"smoke-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1", partition=0)
            await producer.send_and_wait(topic, b"committed-2", partition=0)

        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", partition=0)
        await producer.abort_transaction()

        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3", partition=0)
    finally:
        await producer.stop()

    committed = await _read_all(kafka_bootstrap, topic, "read_committed")
    uncommitted = await _read_all(kafka_bootstrap, topic, "read_uncommitted")

    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    # The aborted record is in the log; only the isolation level hides it.
    assert b"aborted" in uncommitted


async def test_second_producer_with_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    from aiokafka.errors import KafkaError

    topic = await new_topic("fence")
    transactional_id = f"fence-{uuid.uuid4().hex}"
    first = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    second = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    await first.start()
    await second.start()
    fenced = False
    try:
        try:
            async with first.transaction():
                await first.send_and_wait(topic, b"zombie", partition=0)
        except KafkaError:
            fenced = True
        async with second.transaction():
            await second.send_and_wait(topic, b"live", partition=0)
    finally:
        await second.stop()
        with contextlib.suppress(KafkaError):
            await first.stop()

    assert fenced, "the older producer must be fenced once a newer one initialised"
    assert await _read_all(kafka_bootstrap, topic, "read_committed") == [b"live"]
