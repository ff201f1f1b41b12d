"""Secrets at rest (pure): sealing, opening, key rotation, and the dev key kept to dev."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from cex.infra.secretbox import DEV_KEY, SecretBox, SecretsSettings, UnknownKeyId


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_a_sealed_secret_opens_only_with_its_key_and_row() -> None:
    box = SecretBox(SecretsSettings(secrets_key_id="k1", secrets_keys={"k1": key()}))
    sealed, key_id = box.seal(b"the secret", b"api-key-1")
    assert key_id == "k1"
    assert b"the secret" not in sealed
    assert box.open(sealed, key_id, b"api-key-1") == b"the secret"
    with pytest.raises(InvalidTag):  # copied to another row: does not open
        box.open(sealed, key_id, b"api-key-2")
    with pytest.raises(UnknownKeyId):
        box.open(sealed, "k0", b"api-key-1")


def test_rotation_seals_with_the_new_key_and_still_opens_the_old() -> None:
    old, new = key(), key()
    before = SecretBox(SecretsSettings(secrets_key_id="old", secrets_keys={"old": old}))
    sealed, key_id = before.seal(b"s", b"row")
    after = SecretBox(SecretsSettings(secrets_key_id="new",
                                      secrets_keys={"old": old, "new": new}))  # fmt: skip
    assert after.open(sealed, key_id, b"row") == b"s"
    assert after.seal(b"s", b"row")[1] == "new"


def test_the_dev_key_is_refused_outside_dev_and_keys_are_checked() -> None:
    assert SecretsSettings(environment="dev").secrets_keys == {"dev": DEV_KEY}
    with pytest.raises(ValidationError, match="refused outside dev"):
        SecretsSettings(environment="prod")
    with pytest.raises(ValidationError, match="names no key"):
        SecretsSettings(secrets_key_id="missing", secrets_keys={"k": key()})
    with pytest.raises(ValidationError, match="32 bytes"):
        SecretsSettings(secrets_key_id="k", secrets_keys={"k": base64.b64encode(b"short").decode()})
