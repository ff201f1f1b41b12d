"""Web sessions of the account endpoints (`/cex/v1/...`), and their errors.

Design
------
Logging in (`POST /cex/v1/auth/verify`) creates a session (`cex.infra.sessions`): an
opaque random token stored only as its SHA-256, with an absolute expiry
(`api_session_ttl_s`), and a CSRF token stored as its SHA-256 beside it. The client gets
both tokens twice:

* as cookies: ``cex_session`` (the token; HttpOnly, SameSite=Lax, Secure in prod, Path=/)
  and ``cex_csrf`` (the CSRF token; readable by the page's JavaScript);
* in the JSON body: ``token`` and ``csrfToken``.

A request is authenticated by, in this order:

1. ``Authorization: Bearer <token>`` — scripts and the WebSocket gateway. Browsers never
   attach it by themselves, so it needs no CSRF token.
2. The ``cex_session`` cookie — the web UI. Every request other than GET/HEAD/OPTIONS
   must echo the CSRF token in the ``X-CSRF-Token`` header (double submit: a cross-site
   page cannot read ``cex_csrf``); it is checked, in constant time, against the hash
   stored with the session.

`POST /cex/v1/auth/logout` revokes the session and clears both cookies.

Dependencies: `SessionUser` (the user id) and `CurrentSession` (the whole session).

Errors of the account endpoints (-9000..-9099)
-----------------------------------------------
Every error is ``{"code": -NNNN, "msg": "..."}`` and means nothing changed. Malformed
JSON bodies get Binance's parameter errors (-1102 missing, -1130 invalid) naming the field.

======  ======  ================================================================
code    status  meaning
======  ======  ================================================================
-9000   400     not an email address
-9001   429     too many login codes requested for this email; wait
-9002   429     too many login requests from this IP address; wait
-9003   400     no login code pending for this email (never sent, used or replaced)
-9004   400     the login code expired; request a new one
-9005   400     wrong login code (the message says how many attempts are left)
-9006   400     too many wrong codes: the code is burned; request a new one
-9010   401     not logged in (no session cookie nor bearer token)
-9011   401     session invalid, expired or logged out
-9012   401     CSRF token missing or wrong (cookie-authenticated, non-GET request)
-9020   400     invalid API key request (permissions, type, public key, label)
-9021   404     no such API key (or not yours)
-9030   400     unknown asset
-9031   400     invalid amount (malformed, not positive, too precise, out of bounds)
-9032   400     insufficient balance
-9033   404     unknown user
-9034   409     id reused with other values (deposit externalId, withdrawal clientId)
-9035   403     the faucet is disabled on this exchange
-9036   404     no such withdrawal
-9037   409     the withdrawal is already final the other way (completed vs rejected)
-9038   400     invalid withdrawal address
-9039   400     invalid request (other field errors of the account endpoints)
-9040   403     the operator role is disabled (no operator token configured)
-9041   401     operator token missing or wrong
======  ======  ================================================================
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from cex.api.deps import State
from cex.api.errors import ApiError
from cex.api.settings import ApiSettings
from cex.infra import sessions

SESSION_COOKIE = "cex_session"
CSRF_COOKIE = "cex_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# --------------------------------------------------------------------------- errors


def invalid_email() -> ApiError:
    return ApiError(-9000, "Not an email address.")


def too_many_codes() -> ApiError:
    return ApiError(-9001, "Too many login codes requested for this email; try again later.", 429)


def too_many_from_ip() -> ApiError:
    return ApiError(-9002, "Too many login requests from this IP address; try again later.", 429)


def no_code() -> ApiError:
    return ApiError(-9003, "No login code is pending for this email; request a new one.")


def code_expired() -> ApiError:
    return ApiError(-9004, "The login code expired; request a new one.")


def wrong_code(attempts_left: int) -> ApiError:
    return ApiError(-9005, f"Wrong login code; {attempts_left} attempt(s) left.")


def code_burned() -> ApiError:
    return ApiError(-9006, "Too many wrong login codes; this code is burned, request a new one.")


def not_logged_in() -> ApiError:
    return ApiError(-9010, "Not logged in: send the session cookie or a bearer token.", 401)


def session_invalid() -> ApiError:
    return ApiError(-9011, "Session invalid, expired or logged out; log in again.", 401)


def csrf_failed() -> ApiError:
    return ApiError(-9012, f"CSRF token missing or wrong: echo the {CSRF_COOKIE} cookie in the "
                    f"{CSRF_HEADER} header.", 401)  # fmt: skip


def invalid_key_request(detail: str) -> ApiError:
    return ApiError(-9020, f"Invalid API key request: {detail}.")


def unknown_key() -> ApiError:
    return ApiError(-9021, "No such API key.", 404)


def unknown_asset() -> ApiError:
    return ApiError(-9030, "Unknown asset.")


def invalid_amount(detail: str) -> ApiError:
    return ApiError(-9031, f"Invalid amount: {detail}.")


def insufficient_balance() -> ApiError:
    return ApiError(-9032, "Account has insufficient balance for requested action.")


def unknown_user() -> ApiError:
    return ApiError(-9033, "Unknown user.", 404)


def conflicting_request(detail: str) -> ApiError:
    return ApiError(-9034, f"Conflicting request: {detail}.", 409)


def faucet_disabled() -> ApiError:
    return ApiError(-9035, "The faucet is disabled on this exchange.", 403)


def unknown_withdrawal() -> ApiError:
    return ApiError(-9036, "No such withdrawal.", 404)


def withdrawal_final(detail: str) -> ApiError:
    return ApiError(-9037, f"Withdrawal already final: {detail}.", 409)


def invalid_address() -> ApiError:
    return ApiError(-9038, "Invalid withdrawal address: 1 to 256 printable characters, no spaces.")


def invalid_request(detail: str) -> ApiError:
    return ApiError(-9039, f"Invalid request: {detail}.")


def operator_disabled() -> ApiError:
    return ApiError(-9040, "The operator role is disabled (no operator token configured).", 403)


def operator_refused() -> ApiError:
    return ApiError(-9041, "Operator token missing or wrong.", 401)


# --------------------------------------------------------------------------- cookies


def set_cookies(response: Response, settings: ApiSettings, session: sessions.NewSession) -> None:
    secure = settings.environment == "prod"
    max_age = settings.api_session_ttl_s
    response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, path="/",
                        secure=secure, httponly=True, samesite="lax")  # fmt: skip
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=max_age, path="/",
                        secure=secure, httponly=False, samesite="lax")  # fmt: skip


def clear_cookies(response: Response, settings: ApiSettings) -> None:
    secure = settings.environment == "prod"
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True,
                           samesite="lax")  # fmt: skip
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, httponly=False, samesite="lax")


# --------------------------------------------------------------------------- dependencies


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise session_invalid()
    return token.strip()


async def current_session(request: Request, state: State) -> sessions.Session:
    """The caller's live session (bearer token first, else the cookie plus CSRF)."""
    token = _bearer(request)
    by_cookie = token is None
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise not_logged_in()
    session = await sessions.session_for_token(state.pool, token, state.clock_ms())
    if session is None:
        raise session_invalid()
    if by_cookie and request.method not in SAFE_METHODS:
        csrf = request.headers.get(CSRF_HEADER)
        if not csrf or not session.csrf_matches(csrf):
            raise csrf_failed()
    return session


CurrentSession = Annotated[sessions.Session, Depends(current_session)]


async def session_user(session: CurrentSession) -> int:
    return session.user_id


SessionUser = Annotated[int, Depends(session_user)]
