"""Signed requests for raw HTTP tests, as Binance's docs describe them: the signature covers
the query string concatenated with the body (`signature` left out), HMAC-SHA256 in hex or
Ed25519 in base64, and the key goes in `X-MBX-APIKEY`.

`Signer.query(params)` gives a whole signed query string; `Signer.form(params)` a signed
form body (for a POST/PUT/DELETE with nothing in the query string). Both add `timestamp`
(now, unless given) and keep the parameters' order, so a test can tamper with the text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hmac_sha256(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ed25519(private_key: Ed25519PrivateKey, payload: str) -> str:
    return base64.b64encode(private_key.sign(payload.encode())).decode()


def public_pem(private_key: Ed25519PrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass(frozen=True)
class Signer:
    api_key: str
    sign: Callable[[str], str]

    @classmethod
    def hmac(cls, api_key: str, secret: str) -> Signer:
        return cls(api_key, lambda payload: hmac_sha256(secret, payload))

    @classmethod
    def ed25519(cls, api_key: str, private_key: Ed25519PrivateKey) -> Signer:
        return cls(api_key, lambda payload: ed25519(private_key, payload))

    @property
    def headers(self) -> dict[str, str]:
        return {"X-MBX-APIKEY": self.api_key}

    def payload(self, params: Mapping[str, object], timestamp: int | None = None) -> str:
        """The parameters as sent (urlencoded, in order), with `timestamp` last."""
        values = {k: str(v) for k, v in params.items()}
        values.setdefault("timestamp", str(now_ms() if timestamp is None else timestamp))
        return urlencode(values)

    def signed(self, payload: str) -> str:
        """`payload` with its signature appended (percent-encoded: base64 has '+', '/')."""
        return f"{payload}&signature={quote(self.sign(payload), safe='')}"

    def query(self, params: Mapping[str, object], timestamp: int | None = None) -> str:
        return self.signed(self.payload(params, timestamp))

    def form(self, params: Mapping[str, object], timestamp: int | None = None) -> str:
        """A signed `application/x-www-form-urlencoded` body (empty query string)."""
        return self.signed(self.payload(params, timestamp))
