"""The gateway's settings (``CEX_GATEWAY_*`` on top of the shared ``CEX_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from cex.infra.settings import InfraSettings


class GatewaySettings(InfraSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    #: WebSocket streams, ``/healthz``, ``/readyz`` and ``/metrics`` on one port.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 18300
    #: The server pings every ``ping_interval_s``; a client whose pong has not come back
    #: ``ping_timeout_s`` later is dropped (Binance: 20 s and 1 minute).
    gateway_ping_interval_s: float = 20.0
    gateway_ping_timeout_s: float = 60.0
    #: A client's send queue (bytes written, not yet read by it); over this it is dropped.
    gateway_max_buffer_bytes: int = 256 * 1024
    #: Binance's limits: incoming messages per second, streams per connection.
    gateway_messages_per_s: int = 5
    gateway_max_streams: int = 1024
    #: Per client IP: open connections, and connection attempts per window (Binance: 300
    #: attempts per 5 minutes).
    gateway_connections_per_ip: int = 1000
    gateway_attempts_per_ip: int = 300
    gateway_attempts_window_s: float = 300.0
    #: Proxies trusted to say who the client is (comma-separated addresses or networks,
    #: ``*`` for any), as uvicorn's FORWARDED_ALLOW_IPS: behind an Ingress, the per-IP
    #: limits count the address its ``X-Forwarded-For`` names, not the controller's.
    gateway_forwarded_allow_ips: str = ""
    #: Ticker and average-price refresh (one query for every market).
    gateway_ticker_refresh_s: float = 1.0
    #: How often each book's seq is compared with its key (a lost last update is noticed
    #: even when no later one arrives).
    gateway_book_check_s: float = 2.0
