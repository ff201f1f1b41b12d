"""Signed-request rules (pure): parameters as Binance takes them, timestamps, signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cex.api import auth, errors
from cex.api.params import Params
from cex.infra.apikeys import ApiKey

NOW = 1_700_000_000_000
SECRET = b"s3cr3t"


def hmac_key(permissions: frozenset[str] = frozenset({"read", "trade"})) -> ApiKey:
    return ApiKey(1, 7, "k", "HMAC", "", permissions, SECRET, None)


def code_of(call: object) -> int:
    with pytest.raises(errors.ApiError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code


def test_the_signed_payload_is_query_then_body_without_the_signature() -> None:
    params = Params("symbol=BTCUSDT&side=BUY&signature=abc", "quantity=1&price=2")
    assert params.signed_payload == "symbol=BTCUSDT&side=BUYquantity=1&price=2"
    assert params.values == {"symbol": "BTCUSDT", "side": "BUY", "signature": "abc",
                             "quantity": "1", "price": "2"}  # fmt: skip


def test_a_parameter_sent_twice_is_refused() -> None:
    assert code_of(lambda: Params("symbol=A&symbol=B", "")) == -1101
    assert code_of(lambda: Params("symbol=A", "symbol=A")) == -1101


@pytest.mark.parametrize(
    ("text", "code"), [("1e5", -1100), ("-1", -1100), ("1.", -1100), ("0x10", -1100),
                       ("1" * 21, -1100), ("1." + "1" * 21, -1100)],
)  # fmt: skip
def test_decimals_are_binance_decimals(text: str, code: int) -> None:
    assert code_of(lambda: Params(f"price={text}", "").decimal("price")) == code


def test_integers_fit_64_bits() -> None:
    assert Params(f"orderId={2**63 - 1}", "").integer("orderId") == 2**63 - 1
    assert code_of(lambda: Params(f"orderId={2**63}", "").integer("orderId")) == -1130
    assert code_of(lambda: Params("orderId=1.5", "").integer("orderId")) == -1100
    assert code_of(lambda: Params("", "").required_integer("timestamp")) == -1102
    assert code_of(lambda: Params("timestamp=", "").required_integer("timestamp")) == -1105


def test_symbols_is_a_json_array() -> None:
    assert Params('symbols=["BTCUSDT","ETHUSDT"]', "").symbols() == ["BTCUSDT", "ETHUSDT"]
    assert code_of(lambda: Params("symbols=BTCUSDT", "").symbols()) == -1100
    assert code_of(lambda: Params("symbols=[]", "").symbols()) == -1130


def test_timestamps_within_the_receive_window() -> None:
    assert auth.check_timestamp(Params(f"timestamp={NOW - 5000}", ""), NOW) == 5000
    assert auth.check_timestamp(Params(f"timestamp={NOW + 1000}", ""), NOW) == 5000
    stale = Params(f"timestamp={NOW - 5001}", "")
    assert code_of(lambda: auth.check_timestamp(stale, NOW)) == -1021
    ahead = Params(f"timestamp={NOW + 1001}", "")
    with pytest.raises(errors.ApiError, match="1001ms ahead"):
        auth.check_timestamp(ahead, NOW)
    wide = Params(f"timestamp={NOW - 50_000}&recvWindow=60000", "")
    assert auth.check_timestamp(wide, NOW) == 60_000
    too_wide = Params(f"timestamp={NOW}&recvWindow=60001", "")
    assert code_of(lambda: auth.check_timestamp(too_wide, NOW)) == -1131


def test_hmac_signatures() -> None:
    payload = f"symbol=BTCUSDT&timestamp={NOW}"
    good = hmac.new(SECRET, payload.encode(), hashlib.sha256).hexdigest()
    auth.verify_signature(hmac_key(), payload, good)
    auth.verify_signature(hmac_key(), payload, good.upper())  # hex is case-insensitive
    assert code_of(lambda: auth.verify_signature(hmac_key(), payload + "0", good)) == -1022
    assert code_of(lambda: auth.verify_signature(hmac_key(), payload, good[:-1] + "0")) in (
        -1022,)  # fmt: skip


def test_ed25519_signatures() -> None:
    private = Ed25519PrivateKey.generate()
    key = ApiKey(2, 7, "e", "ED25519", "", frozenset({"trade"}), None, private.public_key())
    payload = f"symbol=BTCUSDT&timestamp={NOW}"
    signature = base64.b64encode(private.sign(payload.encode())).decode()
    auth.verify_signature(key, payload, signature)
    # A '+' sent unescaped in a form arrives as a space: still the same signature.
    auth.verify_signature(key, payload, signature.replace("+", " "))
    other = base64.b64encode(Ed25519PrivateKey.generate().sign(payload.encode())).decode()
    assert code_of(lambda: auth.verify_signature(key, payload, other)) == -1022
    assert code_of(lambda: auth.verify_signature(key, payload, "not base64!")) == -1022
