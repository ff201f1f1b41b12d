"""A synthetic executions stream for the candle services: TRADE_EXECUTED events produced
transactionally to a test topic on each market's partition (as the engine does) and the
same trades inserted into the ``trades`` table (as settlement does)."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from cex.core import candles
from cex.core.events import BookDelta, Event, Side, TradeExecuted, encode
from cex.infra import redis as keys
from cex.infra.settings import InfraSettings

#: (name, symbol, partition) of the example markets in the test databases.
MARKETS = [("btc-usdt", "BTCUSDT", 0), ("eth-usdt", "ETHUSDT", 1)]
T0 = 1_800_000_000_000


@dataclass
class Stream:
    dsn: str
    bootstrap: str
    topic: str
    redis_url: str
    prefix: str
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    trades: dict[str, list[TradeExecuted]] = field(default_factory=dict)  # by market name
    seq: dict[str, int] = field(default_factory=dict)
    ts: dict[str, int] = field(default_factory=dict)

    @property
    def infra(self) -> InfraSettings:
        return InfraSettings(
            postgres_dsn=self.dsn, kafka_bootstrap=self.bootstrap, executions_topic=self.topic,
            redis_url=self.redis_url, redis_prefix=self.prefix,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        return {
            "CEX_POSTGRES_DSN": self.dsn,
            "CEX_KAFKA_BOOTSTRAP": self.bootstrap,
            "CEX_EXECUTIONS_TOPIC": self.topic,
            "CEX_REDIS_URL": self.redis_url,
            "CEX_REDIS_PREFIX": self.prefix,
        }

    def make(self, name: str, symbol: str, n: int) -> list[Event]:
        """``n`` trades of one market (with a book delta between some), times moving by
        random steps from milliseconds to hours."""
        own = self.trades.setdefault(name, [])
        events: list[Event] = []
        for _ in range(n):
            seq = self.seq.get(name, 0) + 1
            if self.rng.random() < 0.2:
                events.append(BookDelta(symbol, seq, 0, self.ts.get(name, T0), Side.BUY, 1, 1))
                seq += 1
            ts = self.ts.get(name, T0) + self.rng.choice(
                [0, 3, 250, 999, 1000, 30_000, 61_000, 3_600_000, 50_000_000]
            )
            price, qty = self.rng.randint(400_000, 600_000), self.rng.randint(1, 50_000)
            side = self.rng.choice([Side.BUY, Side.SELL])
            trade = TradeExecuted(
                symbol, seq, seq, ts, len(own) + 1, price, qty, price * qty, qty * 1000, side,
                1, 1, 2, 2, 0, 0,
            )  # fmt: skip
            own.append(trade)
            events.append(trade)
            self.seq[name], self.ts[name] = seq, ts
        return events

    async def produce(self, n: int, *, transactions: int = 1) -> None:
        """``n`` trades per market in ``transactions`` Kafka transactions, and the same
        trades in the ``trades`` table."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=f"test-{uuid.uuid4().hex}"
        )
        await producer.start()
        conn = await asyncpg.connect(self.dsn)
        try:
            for _ in range(transactions):
                made = [
                    (name, p, self.make(name, sym, n // transactions)) for name, sym, p in MARKETS
                ]
                async with producer.transaction():
                    for _, partition, events in made:
                        for event in events:
                            await producer.send(self.topic, encode(event), partition=partition)
                await conn.executemany(
                    """
                    INSERT INTO trades (market, trade_id, price, qty, quote_amount, base_amount,
                        taker_side, maker_order_id, taker_order_id, maker_user_id,
                        taker_user_id, maker_fee, taker_fee, seq, ts)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 2, 1, 2, 0, 0, $8, $9)
                    """,
                    [
                        (name, t.trade_id, t.price, t.qty, t.quote_amount, t.base_amount,
                         t.taker_side.value, t.seq, t.ts)
                        for name, _, events in made for t in events
                        if isinstance(t, TradeExecuted)
                    ],
                )  # fmt: skip
        finally:
            await conn.close()
            await producer.stop()

    def expected(self, name: str) -> dict[tuple[str, int], candles.Candle]:
        return candles.aggregate(self.trades.get(name, []))

    async def aggregated_seq(self, client: aioredis.Redis, name: str) -> int:
        raw = await client.hget(keys.candles_state_key(self.prefix, name), "state")
        return candles.decode_state(raw).last_seq if raw else 0

    async def pending(self, client: aioredis.Redis) -> int:
        total = 0
        for name, _, _ in MARKETS:
            for interval in candles.INTERVALS:
                total += await client.hlen(keys.candles_pending_key(self.prefix, name, interval))
        return total

    async def wait_done(self, client: aioredis.Redis, timeout: float = 60) -> None:
        """Until every trade is aggregated and nothing is pending for Postgres."""
        async with asyncio.timeout(timeout):
            while True:
                seqs = [await self.aggregated_seq(client, n) for n, _, _ in MARKETS]
                if seqs == [self.seq.get(n, 0) for n, _, _ in MARKETS] and not await self.pending(
                    client
                ):
                    return
                await asyncio.sleep(0.05)
