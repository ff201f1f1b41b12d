"""The API's routes, one module per resource. `ROUTERS` is what `create_app` mounts."""

from __future__ import annotations

from fastapi import APIRouter

from cex.api.routes import general

ROUTERS: list[APIRouter] = [general.router]
