"""The real clients, from their registries, unmodified, pointed at the local exchange."""

from __future__ import annotations

import warnings
from typing import Any

import asyncpg
import ccxt.async_support as ccxt_async
from binance_common.configuration import ConfigurationRestAPI
from binance_sdk_spot.rest_api import SpotRestAPI
from binance_sdk_spot.spot import Spot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cex.infra import apikeys
from cex.infra.secretbox import SecretBox

from .conftest import Exchange, Trader

# python-binance imports `websockets.WebSocketClientProtocol` (so `websockets.legacy`), which
# websockets ≥ 14 deprecates; the import runs at collection, before a filterwarnings mark applies,
# so tests import python-binance's classes from here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"websockets\.(WebSocketClientProtocol|legacy) is deprecated",
                            DeprecationWarning)  # fmt: skip
    from binance import AsyncClient, Client
    from binance.exceptions import BinanceAPIException

__all__ = ["AsyncClient", "BinanceAPIException", "Client", "binance_sdk_spot", "ccxt_binance",
           "ed25519_key", "python_binance"]  # fmt: skip


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


def binance_sdk_spot(url: str, trader: Trader | None = None, *, api_key: str | None = None,
                     private_key: str | None = None) -> SpotRestAPI:  # fmt: skip
    """The official `binance-sdk-spot` REST client, configured through its own configuration
    object: `base_path` is our URL; signed with the trader's HMAC secret, or with an Ed25519
    `private_key` (PEM) for `api_key`. A generous timeout (its default is 1 s) and no
    retries, so that a slow answer is a failure rather than a second order."""
    config = ConfigurationRestAPI(
        api_key=api_key or (trader.api_key if trader else None),
        api_secret=trader.secret if trader and private_key is None else None,
        private_key=private_key,
        base_path=url,
        timeout=30_000,
        retries=0,
    )  # fmt: skip
    return Spot(config_rest_api=config).rest_api


def python_binance(url: str, trader: Trader | None = None) -> AsyncClient:
    """python-binance's `AsyncClient` pointed at our URL through its `API_URL` attribute
    (spot endpoints are `{API_URL}/v3/{path}`); nothing else changed."""
    client = AsyncClient(trader.api_key if trader else None, trader.secret if trader else None)
    client.API_URL = f"{url}/api"
    return client


async def ed25519_key(exchange: Exchange, user_id: int) -> tuple[str, str]:
    """A fresh Ed25519 key pair, its public half registered for `user_id` on the exchange's
    database: (api key, private key as PKCS#8 PEM)."""
    private = Ed25519PrivateKey.generate()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()  # fmt: skip
    conn = await asyncpg.connect(exchange.dsn)
    try:
        created = await apikeys.create(conn, SecretBox(), user_id, public_key_pem=public_pem)
    finally:
        await conn.close()
    assert created.secret is None
    return created.api_key, private_pem
