"""The real clients, from their registries, unmodified, pointed at the local exchange."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt_async

from .conftest import Trader


def ccxt_binance(url: str, trader: Trader | None = None, **options: Any) -> ccxt_async.binance:
    """ccxt's `binance` class with its spot URLs replaced by ours (nothing else changed).
    Only spot markets are loaded; currencies and margin pairs (wallet and margin endpoints,
    which a spot exchange does not have) are not fetched."""
    exchange = ccxt_async.binance({
        "apiKey": trader.api_key if trader else None,
        "secret": trader.secret if trader else None,
        "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False, **options},
    })  # fmt: skip
    api = dict(exchange.urls["api"])
    for name in ("public", "private", "v1", "v3"):
        if name in api:
            api[name] = f"{url}/api/{'v1' if name == 'v1' else 'v3'}"
    exchange.urls["api"] = api
    return exchange
