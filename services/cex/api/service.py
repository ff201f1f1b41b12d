"""`cex serve api`: the public API under uvicorn (uvloop, httptools)."""

from __future__ import annotations

import uvicorn

from cex.api.app import create_app
from cex.api.fastpath import OrderFastPath
from cex.api.settings import ApiSettings


def serve(market: str | None = None) -> None:
    del market  # one public API serves every market
    settings = ApiSettings()
    uvicorn.run(
        OrderFastPath(create_app(settings)),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )
