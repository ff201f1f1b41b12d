"""The gateway's Prometheus metrics (default registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("cex_gateway_connections", "Open stream connections")
STREAMS = Gauge("cex_gateway_streams", "Streams with at least one listener")
PUBLISHED = Counter("cex_gateway_payloads_total", "Payloads fanned out (once per stream)")
SENT = Counter("cex_gateway_frames_sent_total", "Frames written to clients")
SLOW_DISCONNECTS = Counter(
    "cex_gateway_slow_disconnects_total", "Clients disconnected because their send queue was full"
)
REFUSED = Counter(
    "cex_gateway_refused_connections_total", "Connections refused (per-IP limits)", ["reason"]
)
RATE_DISCONNECTS = Counter(
    "cex_gateway_rate_disconnects_total", "Clients disconnected for sending over 5 messages/s"
)
RESYNCS = Counter(
    "cex_gateway_book_resyncs_total", "Book resyncs from the book key after a seq gap", ["market"]
)
TRADE_GAPS = Counter(
    "cex_gateway_trade_gaps_total", "Trades missed on pub/sub (trade id gaps)", ["market"]
)
