"""Request parameters as Binance takes them: from the query string and/or a form body.

A `Params` holds the merged parameters plus the raw text the signature covers (the query
string concatenated with the body, `signature` left out). Typed getters raise Binance's
parameter errors (-1100, -1102, -1105, -1130…). Routes declare what they read with
`Param`s; `openapi(...)` turns the declaration into the route's OpenAPI parameters, so the
schema documents exactly what is parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import Request

from cex.api import errors

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INT = re.compile(r"^-?[0-9]{1,19}$")
#: Bounds of a signed 64-bit integer: every integer parameter fits a BIGINT column.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FORM = "application/x-www-form-urlencoded"


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if not part.startswith("signature="))


class Params:
    """The parameters of one request. Duplicates are refused (-1101)."""

    def __init__(self, query: str, body: str) -> None:
        self.signed_payload = _without_signature(query) + _without_signature(body)
        self.values: dict[str, str] = {}
        for raw in (query, body):
            if not raw:
                continue
            try:
                pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
            except ValueError:
                raise errors.invalid_parameter("query") from None
            for name, value in pairs:
                if name in self.values:
                    raise errors.duplicate_parameter()
                self.values[name] = value

    @classmethod
    def of(cls, values: dict[str, Any]) -> Params:
        """Parameters given as a mapping (the WebSocket API's `params`)."""
        params = cls("", "")
        params.values = {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, list)
                         else str(v).lower() if isinstance(v, bool) else str(v)
                         for k, v in values.items()}  # fmt: skip
        return params

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def raw(self, name: str) -> str | None:
        return self.values.get(name)

    def text(self, name: str, *, required: bool = False, max_len: int = 256) -> str | None:
        value = self.values.get(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return None
        if value == "":
            if required:
                raise errors.parameter_empty(name)
            return None
        if len(value) > max_len:
            raise errors.invalid_parameter(name)
        return value

    def required_text(self, name: str, *, max_len: int = 256) -> str:
        value = self.text(name, required=True, max_len=max_len)
        assert value is not None
        return value

    def integer(
        self,
        name: str,
        *,
        required: bool = False,
        low: int = INT64_MIN,
        high: int = INT64_MAX,
    ) -> int | None:
        value = self.text(name, required=required, max_len=32)
        if value is None:
            return None
        if not _INT.match(value):
            raise errors.illegal_chars_pattern(name, "^[0-9]{1,20}$")
        number = int(value)
        if not low <= number <= high:
            raise errors.invalid_parameter(name)
        return number

    def required_integer(self, name: str, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
        value = self.integer(name, required=True, low=low, high=high)
        assert value is not None
        return value

    def decimal(self, name: str, *, required: bool = False) -> str | None:
        """A decimal string as Binance accepts it (no sign, no exponent, ≤ 20 + 20 digits)."""
        value = self.text(name, required=required, max_len=64)
        if value is None:
            return None
        if not _DECIMAL.match(value):
            raise errors.illegal_chars(name)
        return value

    def enum(self, name: str, choices: Iterable[str], error: errors.ApiError) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if value not in choices:
            raise error
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise errors.invalid_parameter(name)
        return lowered == "true"

    def symbols(self, name: str = "symbols") -> list[str] | None:
        """A JSON array of symbols, as Binance takes `symbols=["BTCUSDT","ETHUSDT"]`."""
        value = self.text(name, max_len=16_384)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            raise errors.illegal_chars_pattern(
                name, '^\\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}\\]$'
            ) from None
        if (
            not isinstance(parsed, list)
            or not parsed
            or not all(isinstance(s, str) for s in parsed)
        ):
            raise errors.invalid_parameter(name)
        return parsed


async def read(request: Request) -> Params:
    """The request's parameters: its query string, and its body when it is a form."""
    body = b""
    if request.method in ("POST", "PUT", "DELETE"):
        content_type = request.headers.get("content-type", "")
        raw_body = await request.body()
        if raw_body and (content_type.startswith(FORM) or not content_type):
            body = raw_body
    try:
        body_text = body.decode()
    except UnicodeDecodeError:
        raise errors.invalid_parameter("body") from None
    params = Params(request.url.query, body_text)
    request.state.params = params
    return params


# --------------------------------------------------------------------------- OpenAPI

Kind = Literal["string", "integer", "decimal", "boolean", "symbols"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind = "string"
    required: bool = False
    description: str = ""
    enum: Sequence[str] = ()


def _schema(param: Param) -> dict[str, Any]:
    if param.kind == "integer":
        return {"type": "integer", "format": "int64", "minimum": 0, "maximum": INT64_MAX}
    if param.kind == "decimal":
        return {"type": "string", "pattern": _DECIMAL.pattern}
    if param.kind == "boolean":
        return {"type": "boolean"}
    if param.kind == "symbols":
        return {"type": "string", "description": 'JSON array, e.g. ["BTCUSDT","ETHUSDT"]'}
    schema: dict[str, Any] = {"type": "string"}
    if param.enum:
        schema["enum"] = list(param.enum)
    return schema


SIGNED = (
    Param("timestamp", "integer", True, "Milliseconds since the epoch when the request was made."),
    Param("recvWindow", "integer", False, "How long the request is valid (ms, ≤ 60000; 5000)."),
    Param("signature", "string", True, "HMAC-SHA256 (hex) or Ed25519 (base64) signature."),
)


def openapi(*params: Param, form: bool = False) -> dict[str, Any]:
    """`openapi_extra` for a route reading `params` (query, or also a form body)."""
    extra: dict[str, Any] = {
        "parameters": [
            {
                "name": p.name,
                "in": "query",
                "required": p.required and not form,
                "description": p.description,
                "schema": _schema(p),
            }
            for p in params
        ]
    }
    if form:
        extra["requestBody"] = {
            "required": False,
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {p.name: _schema(p) for p in params},
                    }
                }
            },
        }
    return extra
