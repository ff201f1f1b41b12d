"""Binance's rate limits, counted in Redis so every API replica shares them.

* REQUEST_WEIGHT: the weight of each request, per client IP, per fixed minute
  (`X-MBX-USED-WEIGHT-1M`).
* ORDERS: new orders per account per fixed 10 seconds and per day
  (`X-MBX-ORDER-COUNT-10S`, `X-MBX-ORDER-COUNT-1D`).

A request over a limit is refused with 429 (-1003 for weight, -1015 for orders) and
changes nothing; refused requests count too, as on Binance.

The same script call remembers a state-changing signed request's signature for as long as
its timestamp is valid, so the request is accepted once (`cex.api.auth`): one round trip
to Redis per request in all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis.asyncio as aioredis

from cex.api import errors

# KEYS: counters, then optionally a signature key; ARGV: increment, ttl (ms) pairs (the
# signature's ttl last). Returns the counters' new values, then 1 if the signature is new.
_COUNT = """
local out = {}
local counters = #KEYS
if #ARGV == 2 * #KEYS - 1 then counters = #KEYS - 1 end
for i = 1, counters do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if v == tonumber(ARGV[2 * i - 1]) then redis.call('PEXPIRE', KEYS[i], ARGV[2 * i]) end
  out[i] = v
end
if counters < #KEYS then
  out[#KEYS] = redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[#ARGV]) and 1 or 0
end
return out
"""

MINUTE_MS = 60_000
TEN_S_MS = 10_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Limits:
    weight_per_minute: int
    orders_per_10s: int
    orders_per_day: int

    def exchange_info(self) -> list[dict[str, object]]:
        """The `rateLimits` of exchangeInfo: exactly what is enforced."""
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": self.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": self.orders_per_day},
        ]  # fmt: skip


class RateLimiter:
    def __init__(self, client: aioredis.Redis, prefix: str, limits: Limits) -> None:
        self.limits = limits
        self.prefix = prefix
        self._count = client.register_script(_COUNT)

    async def spend(
        self, ip: str, weight: int, now_ms: int, *, orders_of: int | None = None,
        once: tuple[str, int] | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """Count the request (and a new order of account `orders_of`); the headers to send.
        Raises `ApiError` (429) when a limit is exceeded; the headers are on the error.
        `once` is (signature, ms it stays valid): -1022 if that signature was seen."""
        keys = [f"{self.prefix}:rl:w:{ip}:{now_ms // MINUTE_MS}"]
        args: list[int] = [weight, MINUTE_MS + 1000]
        if orders_of is not None:
            keys += [
                f"{self.prefix}:rl:o10:{orders_of}:{now_ms // TEN_S_MS}",
                f"{self.prefix}:rl:od:{orders_of}:{now_ms // DAY_MS}",
            ]
            args += [1, TEN_S_MS + 1000, 1, DAY_MS + 1000]
        if once is not None:
            digest = hashlib.sha256(once[0].encode()).hexdigest()
            keys.append(f"{self.prefix}:sig:{digest}")
            args.append(once[1])
        counts = [int(c) for c in await self._count(keys=keys, args=args)]
        headers = {"X-MBX-USED-WEIGHT-1M": str(counts[0])}
        error: errors.ApiError | None = None
        if counts[0] > self.limits.weight_per_minute:
            error = errors.too_much_weight(self.limits.weight_per_minute)
        if orders_of is not None:
            headers["X-MBX-ORDER-COUNT-10S"] = str(counts[1])
            headers["X-MBX-ORDER-COUNT-1D"] = str(counts[2])
            if error is None and counts[1] > self.limits.orders_per_10s:
                error = errors.too_many_orders(self.limits.orders_per_10s, "10 SECOND")
            if error is None and counts[2] > self.limits.orders_per_day:
                error = errors.too_many_orders(self.limits.orders_per_day, "1 DAY")
        if error is None and once is not None and counts[-1] == 0:
            error = errors.bad_signature()  # a replay of a request accepted before
        if error is not None:
            error.headers = headers
            raise error
        return headers

    async def order_counts(self, user_id: int, now_ms: int) -> tuple[int, int]:
        """(orders in this 10 s window, orders today) without counting anything."""
        counts = await self._count(
            keys=[f"{self.prefix}:rl:o10:{user_id}:{now_ms // TEN_S_MS}",
                  f"{self.prefix}:rl:od:{user_id}:{now_ms // DAY_MS}"],
            args=[0, TEN_S_MS + 1000, 0, DAY_MS + 1000],
        )  # fmt: skip
        return int(counts[0]), int(counts[1])
