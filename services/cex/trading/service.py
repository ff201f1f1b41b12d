"""`cex serve trading`: the internal trading API under uvicorn.

Settings (environment, besides `cex.infra.settings`):

==========================  =====================================================
``CEX_TRADING_HOST``        address to listen on (127.0.0.1)
``CEX_TRADING_PORT``        port (18100)
``CEX_TRADING_WORKERS``     uvicorn worker processes sharing the port (1). Each
                            has its own group commit; their batches lock rows in
                            the one order, so they wait for each other, never
                            deadlock, and the market row numbers their commands
                            in commit order.
==========================  =====================================================

Idle keep-alive connections are kept ``KEEP_ALIVE_S``, longer than its clients keep them
(aiohttp 15 s, httpx 5 s): the client closes an idle connection first. With uvicorn's
default (5 s) a client could send a POST on a connection the server was closing, and an
order placement is not retried (seen as "Server disconnected" under load).
"""

from __future__ import annotations

from typing import Any

import uvicorn
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cex.infra.settings import InfraSettings
from cex.trading.app import PlacementLane, create_app

KEEP_ALIVE_S = 30


class TradingSettings(InfraSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    trading_host: str = "127.0.0.1"
    trading_port: int = 18100
    trading_workers: int = Field(default=1, ge=1)


def app_from_environment() -> PlacementLane:
    """The application of one worker process (uvicorn's factory when there are several)."""
    return create_app(TradingSettings())


def serve(market: str | None = None) -> None:
    del market  # one trading API serves every market
    settings = TradingSettings()
    options: dict[str, Any] = {
        "host": settings.trading_host,
        "port": settings.trading_port,
        "log_level": "warning",
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
    if settings.trading_workers > 1:
        uvicorn.run(
            f"{__name__}:app_from_environment",
            factory=True,
            workers=settings.trading_workers,
            **options,
        )
    else:
        uvicorn.run(create_app(settings), **options)
