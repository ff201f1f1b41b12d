"""The API's routes, one module per resource. `ROUTERS` is what `create_app` mounts."""

from __future__ import annotations

from fastapi import APIRouter

from cex.api.routes import account, general, keys, klines, login, market, orders, wallet

ROUTERS: list[APIRouter] = [general.router, orders.router, account.router]
ROUTERS += [login.router, keys.router, wallet.router]
ROUTERS += [market.router]
ROUTERS += [klines.router]
