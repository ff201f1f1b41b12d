"""`cex serve trading`: the internal trading API under uvicorn."""

from __future__ import annotations

import uvicorn
from pydantic_settings import SettingsConfigDict

from cex.infra.settings import InfraSettings
from cex.trading.app import create_app


class TradingSettings(InfraSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    trading_host: str = "127.0.0.1"
    trading_port: int = 18100


def serve(market: str | None = None) -> None:
    del market  # one trading API serves every market
    settings = TradingSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.trading_host,
        port=settings.trading_port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )
