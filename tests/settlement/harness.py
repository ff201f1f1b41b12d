"""A small exchange on the real stack for settlement tests.

Orders go through the trading API's own store (funds locked, PENDING row, outbox row),
the outbox is fed to the real matching engine core, and the engine's events are produced
transactionally to a fresh ``executions`` topic, on each market's partition — what the
relay and the engine service do, without their processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from cex.core.events import Event, decode_command, encode
from cex.core.matching import MatchingEngine
from cex.infra import accounts, registry
from cex.infra.postgres import create_pool
from cex.infra.runtime import WorkerContext
from cex.infra.settings import InfraSettings
from cex.settlement.service import SettlementSettings, SettlementWorker
from cex.trading.store import OrderStore
from cex.trading.validation import OrderRequest, validate


@dataclass
class Exchange:
    dsn: str
    bootstrap: str
    topic: str
    pool: asyncpg.Pool
    store: OrderStore
    engines: dict[str, MatchingEngine] = field(default_factory=dict)  # by market name
    partitions: dict[str, int] = field(default_factory=dict)  # by market name
    events: list[Event] = field(default_factory=list)  # everything the engines emitted
    produced: list[tuple[int, bytes]] = field(default_factory=list)  # (partition, bytes)

    @property
    def infra(self) -> InfraSettings:
        return InfraSettings(
            postgres_dsn=self.dsn, kafka_bootstrap=self.bootstrap, executions_topic=self.topic
        )

    async def user(self, email: str, **deposits: int) -> int:
        async with self.pool.acquire() as conn:
            user_id = await accounts.create_user(conn, email)
            for asset, amount in deposits.items():
                await accounts.deposit(conn, user_id, asset, amount, f"dep-{email}-{asset}")
        return user_id

    async def place(self, **fields: object) -> int:
        request = OrderRequest(**{"newClientOrderId": uuid.uuid4().hex[:16], **fields})  # type: ignore[arg-type]
        row = await self.store.place(
            validate(request, self.store.market_for_symbol(request.symbol))
        )
        return int(row["id"])  # type: ignore[call-overload]

    async def cancel(self, user_id: int, symbol: str, order_id: int) -> None:
        await self.store.cancel(user_id, symbol, order_id, None)

    async def match(self) -> list[tuple[int, bytes]]:
        """Feed every unpublished outbox command to its engine; returns the new events
        as (partition, bytes), and marks the commands published."""
        out: list[tuple[int, bytes]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT market, command_seq, payload FROM outbox WHERE NOT published"
                " ORDER BY market, command_seq FOR UPDATE"
            )
            for row in rows:
                engine = self.engines[row["market"]]
                events = engine.apply(decode_command(row["payload"]), row["command_seq"])
                self.events.extend(events)
                out.extend((self.partitions[row["market"]], encode(e)) for e in events)
            await conn.execute("UPDATE outbox SET published = true WHERE NOT published")
        self.produced.extend(out)
        return out

    async def publish(self, records: list[tuple[int, bytes]]) -> None:
        """Produce ``records`` in one Kafka transaction, as the engine does."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=f"test-{uuid.uuid4().hex}"
        )
        await producer.start()
        try:
            async with producer.transaction():
                for partition, value in records:
                    await producer.send(self.topic, value, partition=partition)
        finally:
            await producer.stop()

    async def match_and_publish(self) -> list[tuple[int, bytes]]:
        records = await self.match()
        await self.publish(records)
        return records

    def last_seq(self, market: str) -> int:
        return self.engines[market].next_seq - 1

    async def settled_seq(self, market: str) -> int:
        seq = await self.pool.fetchval(
            "SELECT last_seq FROM settlement_progress WHERE market = $1", market
        )
        return int(seq or 0)

    async def settle(self, timeout: float = 30.0, **settings: object) -> SettlementWorker:
        """Run the settlement worker in-process until every engine's last seq is settled."""
        worker = SettlementWorker(self.infra, SettlementSettings(poll_ms=50, **settings))  # type: ignore[arg-type]
        async with running(worker) as _:
            await self.wait_settled(timeout)
        return worker

    async def wait_settled(self, timeout: float = 30.0) -> None:
        """Until every engine's last seq is settled and settlement read every record."""
        ends = await self.end_offsets()
        async with asyncio.timeout(timeout):
            for name in self.engines:
                while await self.settled_seq(name) < self.last_seq(name):
                    await asyncio.sleep(0.05)
                # The last record of a partition is a transaction marker: settlement's
                # next offset stops one short of the end.
                while (
                    ends[name]
                    and await self.pool.fetchval(
                        "SELECT next_offset FROM settlement_progress WHERE market = $1", name
                    )
                    < ends[name] - 1
                ):
                    await asyncio.sleep(0.05)

    async def end_offsets(self) -> dict[str, int]:
        """The read_committed end offset of each market's partition."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, isolation_level="read_committed"
        )
        await consumer.start()
        try:
            tps = {name: TopicPartition(self.topic, p) for name, p in self.partitions.items()}
            ends = await consumer.end_offsets(list(tps.values()))
            return {name: int(ends[tp]) for name, tp in tps.items()}
        finally:
            await consumer.stop()

    async def balance(self, user_id: int, asset: str) -> tuple[int, int]:
        row = await self.pool.fetchrow(
            "SELECT available, locked FROM balances WHERE user_id = $1 AND asset = $2",
            user_id,
            asset,
        )
        return (int(row["available"]), int(row["locked"])) if row else (0, 0)


@contextlib.asynccontextmanager
async def running(worker: SettlementWorker) -> AsyncIterator[WorkerContext]:
    ctx = WorkerContext("settlement")
    task = asyncio.create_task(worker.run(ctx))
    try:
        async with asyncio.timeout(20):
            while not ctx.readiness.ready:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield ctx
        if task.done():
            task.result()  # surface a failure of the worker
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, 20)


@contextlib.asynccontextmanager
async def exchange(dsn: str, bootstrap: str, topic: str) -> AsyncIterator[Exchange]:
    pool = await create_pool(dsn, max_size=4)
    store = OrderStore(pool, clock_ms=lambda: 1_700_000_000_000)
    await store.start()
    try:
        markets = await registry.load_markets(pool)
        ex = Exchange(dsn, bootstrap, topic, pool, store)
        for name, market in markets.items():
            ex.engines[name] = MatchingEngine(market.config)
            ex.partitions[name] = market.partition
        yield ex
    finally:
        await store.stop()
        await pool.close()
