"""Errors of the trading API, with the Binance code and message the public API returns.

Every error means "nothing changed". They are permanent for the request that caused them:
retrying the same request fails the same way.
"""

from __future__ import annotations


class TradingError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def invalid_symbol() -> TradingError:
    return TradingError(-1121, "Invalid symbol.")


def market_closed() -> TradingError:
    return TradingError(-2010, "Market is closed.")


def mandatory(param: str) -> TradingError:
    return TradingError(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, "
                        "or malformed.")  # fmt: skip


def not_required(param: str, order_type: str) -> TradingError:
    return TradingError(-1106, f"Parameter '{param}' sent when not required for {order_type}.")


def illegal_value(param: str) -> TradingError:
    return TradingError(
        -1100,
        f"Illegal characters found in parameter '{param}'; "
        r"legal range is '^([0-9]{1,20})(\.[0-9]{1,20})?$'.",
    )


def filter_failure(name: str) -> TradingError:
    return TradingError(-1013, f"Filter failure: {name}")


def insufficient_balance() -> TradingError:
    return TradingError(-2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> TradingError:
    return TradingError(-2010, "Duplicate order sent.")


def unknown_order() -> TradingError:
    return TradingError(-2011, "Unknown order sent.")


def invalid_enum(code: int, what: str) -> TradingError:
    return TradingError(code, f"Invalid {what}.")


def amend_rejected(reason: str) -> TradingError:
    return TradingError(-2038, f"Order amend rejected: {reason}.")
