"""Errors of the public API: Binance's codes, messages and HTTP statuses.

Every `ApiError` means nothing changed. The HTTP status follows Binance: 4XX for the
client's fault (400 bad request, 401 bad or missing key, 403 forbidden, 429 rate limited),
5XX for ours. The internal trading API already answers with Binance's codes; its errors
are passed through unchanged.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, code: int, msg: str, status: int = 400, *, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        #: Extra detail some errors carry (cancelReplace's per-step results).
        self.data = data
        #: Headers to send with the error (the rate-limit counters, when counted).
        self.headers: dict[str, str] = {}


def unknown_error() -> ApiError:
    return ApiError(-1000, "An unknown error occurred while processing the request.", 500)


def disconnected() -> ApiError:
    return ApiError(-1001, "Internal error; unable to process your request. Please try again.", 503)


def unauthorized() -> ApiError:
    return ApiError(-1002, "You are not authorized to execute this request.", 401)


def too_much_weight(limit: int) -> ApiError:
    return ApiError(
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        429,
    )


def server_busy() -> ApiError:
    return ApiError(-1008, "Server is currently overloaded with other requests. Please try again "
                    "in a few minutes.", 503)  # fmt: skip


def too_many_orders(limit: int, interval: str) -> ApiError:
    return ApiError(-1015, f"Too many new orders; current limit is {limit} orders per {interval}.",
                    429)  # fmt: skip


def unsupported_operation() -> ApiError:
    return ApiError(-1020, "This operation is not supported.")


def timestamp_outside_window() -> ApiError:
    return ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def timestamp_ahead(ms: int) -> ApiError:
    return ApiError(-1021, f"Timestamp for this request was {ms}ms ahead of the server's time.")


def bad_signature() -> ApiError:
    return ApiError(-1022, "Signature for this request is not valid.")


def illegal_chars(param: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{param}'; legal range is "
                    r"'^([0-9]{1,20})(\.[0-9]{1,20})?$'.")  # fmt: skip


def illegal_chars_pattern(param: str, pattern: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{param}'; legal range is "
                    f"'{pattern}'.")  # fmt: skip


def too_many_parameters() -> ApiError:
    return ApiError(-1101, "Too many parameters sent for this endpoint.")


def duplicate_parameter() -> ApiError:
    return ApiError(-1101, "Duplicate values for a parameter detected.")


def mandatory(param: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or "
                    "malformed.")  # fmt: skip


def mandatory_either(first: str, second: str) -> ApiError:
    return ApiError(-1102, f"Param '{first}' or '{second}' must be sent, but both were "
                    "empty/null!")  # fmt: skip


def unknown_parameter(param: str) -> ApiError:
    return ApiError(-1103, f"An unknown parameter was sent: '{param}'.")


def parameter_empty(param: str) -> ApiError:
    return ApiError(-1105, f"Parameter '{param}' was empty.")


def not_required(param: str) -> ApiError:
    return ApiError(-1106, f"Parameter '{param}' sent when not required.")


def bad_precision(param: str) -> ApiError:
    return ApiError(-1111, f"Parameter '{param}' has too much precision.")


def tif_not_required() -> ApiError:
    return ApiError(-1114, "TimeInForce parameter sent when not required.")


def invalid_tif() -> ApiError:
    return ApiError(-1115, "Invalid timeInForce.")


def invalid_order_type() -> ApiError:
    return ApiError(-1116, "Invalid orderType.")


def invalid_side() -> ApiError:
    return ApiError(-1117, "Invalid side.")


def empty_new_client_order_id() -> ApiError:
    return ApiError(-1118, "New client order ID was empty.")


def invalid_symbol() -> ApiError:
    return ApiError(-1121, "Invalid symbol.")


def invalid_interval() -> ApiError:
    return ApiError(-1120, "Invalid interval.")


def lookup_interval_too_big() -> ApiError:
    return ApiError(-1127, "More than 24 hours between startTime and endTime.")


def optional_combination() -> ApiError:
    return ApiError(-1128, "Combination of optional parameters invalid.")


def invalid_parameter(param: str) -> ApiError:
    return ApiError(-1130, f"Data sent for parameter '{param}' is not valid.")


def recv_window_too_big() -> ApiError:
    return ApiError(-1131, "recvWindow must be less than 60000")


def new_order_rejected(msg: str) -> ApiError:
    return ApiError(-2010, msg)


def cancel_rejected() -> ApiError:
    return ApiError(-2011, "Unknown order sent.")


def no_such_order() -> ApiError:
    return ApiError(-2013, "Order does not exist.")


def bad_api_key_format() -> ApiError:
    return ApiError(-2014, "API-key format invalid.", 401)


def rejected_api_key() -> ApiError:
    return ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def filter_failure(name: str) -> ApiError:
    return ApiError(-1013, f"Filter failure: {name}")
