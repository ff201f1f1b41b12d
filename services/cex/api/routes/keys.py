"""API key management for the logged-in user: `/cex/v1/api-keys` (session-authenticated).

HMAC-SHA256 keys get a secret made here, returned once by the create call and stored
sealed (`cex.infra.apikeys`); Ed25519 keys register the user's PEM public key. Listing
never returns a secret. A user only ever sees or deletes their own keys: another user's
key id answers -9021 (404), exactly like an unknown id.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cex.api import schemas
from cex.api import sessions as web
from cex.api.deps import State
from cex.api.sessions import SessionUser
from cex.infra import apikeys

router = APIRouter(prefix="/cex/v1/api-keys", tags=["API keys"])

Permission = Literal["read", "trade", "withdraw"]


class KeyRequest(BaseModel):
    label: str = Field("", max_length=64)
    permissions: list[Permission] = Field(
        default_factory=lambda: list[Permission](["read", "trade"]), min_length=1, max_length=3
    )
    type: Literal["HMAC", "ED25519"] = "HMAC"
    publicKey: str | None = Field(
        None, max_length=4096, description="PEM Ed25519 public key (type ED25519 only)."
    )


class KeyOut(BaseModel):
    id: int
    apiKey: str
    type: Literal["HMAC", "ED25519"]
    label: str
    permissions: list[str]
    createTime: int = Field(description="ms since the epoch")


class KeyCreated(BaseModel):
    id: int
    apiKey: str
    type: Literal["HMAC", "ED25519"]
    label: str
    permissions: list[str]
    secret: str | None = Field(description="HMAC only: the secret, shown this once.")


@router.post("", summary="Create an API key (the HMAC secret is shown once)",
             response_model=KeyCreated,
             responses=schemas.errors_only(400, 401))  # fmt: skip
async def create_key(body: KeyRequest, user_id: SessionUser, state: State) -> dict[str, Any]:
    if body.type == "ED25519" and not body.publicKey:
        raise web.invalid_key_request("type ED25519 needs publicKey")
    if body.type == "HMAC" and body.publicKey is not None:
        raise web.invalid_key_request("publicKey is for type ED25519 only")
    permissions: list[str] = list(dict.fromkeys(body.permissions))
    try:
        created = await apikeys.create(
            state.pool, state.box, user_id, label=body.label, permissions=permissions,
            public_key_pem=body.publicKey,
        )  # fmt: skip
    except apikeys.ApiKeyError as error:
        raise web.invalid_key_request(str(error)) from None
    return {
        "id": created.id,
        "apiKey": created.api_key,
        "type": body.type,
        "label": body.label,
        "permissions": [p for p in apikeys.PERMISSIONS if p in permissions],
        "secret": created.secret,
    }


@router.get(
    "",
    summary="Your API keys (never a secret)",
    response_model=list[KeyOut],
    responses=schemas.errors_only(401),
)
async def list_keys(user_id: SessionUser, state: State) -> list[dict[str, object]]:
    return await apikeys.list_keys(state.pool, user_id)


@router.delete(
    "/{key_id}",
    summary="Delete one of your API keys",
    responses=schemas.documented(schemas.KeyDeleted, "The key is revoked", 400, 401, 404),
)
async def delete_key(key_id: int, user_id: SessionUser, state: State) -> dict[str, Any]:
    if not 0 < key_id < 2**63:
        raise web.unknown_key()
    if not await apikeys.delete(state.pool, user_id, key_id):
        raise web.unknown_key()
    return {"id": key_id, "deleted": True}
