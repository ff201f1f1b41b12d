"""Figures the benchmarks print, computed one way."""

from __future__ import annotations


def latency_ms(seconds: list[float], digits: int = 3) -> dict[str, float]:
    """`p50_ms` and `p99_ms` of latencies given in seconds (sorts them in place)."""
    seconds.sort()
    n = len(seconds)
    return {
        "p50_ms": round(seconds[n // 2] * 1000, digits),
        "p99_ms": round(seconds[min(n - 1, int(n * 0.99))] * 1000, digits),
    }
