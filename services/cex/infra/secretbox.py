"""Secrets at rest: AES-256-GCM with a key chosen by id, so keys can rotate.

A sealed secret is `nonce (12 bytes) ‖ ciphertext+tag`; the key id is stored beside it and
the row's identity (e.g. the API key) is the associated data, so a sealed secret copied to
another row does not open. The keys come from settings (`CEX_SECRETS_KEYS`, a JSON object
id → base64 of 32 bytes, and `CEX_SECRETS_KEY_ID`, the one new secrets are sealed with);
the dev key is refused outside dev.
"""

from __future__ import annotations

import base64
import os
from typing import Self

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The key of dev stacks and tests (base64 of 32 bytes); refused outside dev.
DEV_KEY = "ZGV2LW9ubHktc2VjcmV0cy1rZXktMzItYnl0ZXMhISE="


class SecretsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    environment: str = "dev"
    secrets_key_id: str = "dev"
    secrets_keys: dict[str, str] = Field(default_factory=lambda: {"dev": DEV_KEY})

    @model_validator(mode="after")
    def _usable(self) -> Self:
        if self.secrets_key_id not in self.secrets_keys:
            raise ValueError("CEX_SECRETS_KEY_ID names no key in CEX_SECRETS_KEYS")
        if self.environment != "dev" and DEV_KEY in self.secrets_keys.values():
            raise ValueError("the dev secrets-at-rest key is refused outside dev")
        for key_id, key in self.secrets_keys.items():
            if len(base64.b64decode(key)) != 32:
                raise ValueError(f"secrets key {key_id!r} is not base64 of 32 bytes")
        return self


class UnknownKeyId(LookupError):
    """A sealed secret names a key id the settings do not have (rotated out too early)."""


class SecretBox:
    def __init__(self, settings: SecretsSettings | None = None) -> None:
        settings = settings or SecretsSettings()
        self.key_id = settings.secrets_key_id
        self._keys = {k: AESGCM(base64.b64decode(v)) for k, v in settings.secrets_keys.items()}

    def seal(self, secret: bytes, associated: bytes) -> tuple[bytes, str]:
        """(sealed bytes, key id) for storing."""
        nonce = os.urandom(12)
        return nonce + self._keys[self.key_id].encrypt(nonce, secret, associated), self.key_id

    def open(self, sealed: bytes, key_id: str, associated: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyId(key_id)
        return key.decrypt(sealed[:12], sealed[12:], associated)
