"""Email one-time-password login and sessions: `/cex/v1/auth/...`.

The session design and the error codes are in `cex.api.sessions`; delivery, pepper and
rate limits in `cex.api.otp`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from cex.api import otp, schemas
from cex.api import sessions as web
from cex.api.deps import State, client_ip
from cex.infra import accounts, sessions

router = APIRouter(prefix="/cex/v1/auth", tags=["Login and sessions"])


class CodeRequest(BaseModel):
    email: str = Field(max_length=254, examples=["alice@example.com"])


class CodeSent(BaseModel):
    sent: bool = Field(description="Always true: the answer never says whether a user exists.")
    expiresInS: int = Field(description="Lifetime of the code, in seconds.")


class Verification(BaseModel):
    email: str = Field(max_length=254, examples=["alice@example.com"])
    code: str = Field(max_length=16, description="The six digits received by email.")


class SessionOut(BaseModel):
    userId: int
    email: str
    expiresAt: int = Field(description="Absolute expiry, ms since the epoch.")


class LoggedIn(SessionOut):
    token: str = Field(description="Bearer token (`Authorization: Bearer …`); also set as "
                       "the HttpOnly `cex_session` cookie. Shown once.")  # fmt: skip
    csrfToken: str = Field(description="Echo in `X-CSRF-Token` on cookie-authenticated "
                           "non-GET requests; also the `cex_csrf` cookie.")  # fmt: skip


async def _limit_ip(state: State, request: Request) -> None:
    settings = state.settings
    used = await otp.count(state.redis, settings, "ip", client_ip(request), state.clock_ms())
    if used > settings.api_auth_per_ip:
        raise web.too_many_from_ip()


def _email(raw: str) -> str:
    email = sessions.normalise_email(raw)
    if email is None:
        raise web.invalid_email()
    return email


@router.post(
    "/otp",
    summary="Send a login code to an email address",
    description="Sends a 6-digit code, valid `api_otp_ttl_s` (5 minutes by default); a new "
    "request replaces the previous code. Rate-limited per email and per client IP.",
    response_model=CodeSent,
    responses=schemas.errors_only(400, 429),
)
async def request_code(body: CodeRequest, request: Request, state: State) -> dict[str, Any]:
    settings = state.settings
    email = _email(body.email)
    await _limit_ip(state, request)
    now = state.clock_ms()
    if await otp.count(state.redis, settings, "email", otp.email_key(email), now) > (
        settings.api_otp_per_email
    ):
        raise web.too_many_codes()
    code = await sessions.issue_code(
        state.pool, otp.pepper(), email, now, settings.api_otp_ttl_s * 1000
    )
    await otp.sender(request, settings).send(email, code)
    return {"sent": True, "expiresInS": settings.api_otp_ttl_s}


@router.post(
    "/verify",
    summary="Log in with the code: creates the user if new, and a session",
    description="Returns the session token and CSRF token, and sets them as cookies "
    "(`cex_session`: HttpOnly, SameSite=Lax; `cex_csrf`). Each wrong code counts; "
    "`api_otp_max_attempts` wrong codes burn it.",
    response_model=LoggedIn,
    responses=schemas.errors_only(400, 429),
)
async def verify(
    body: Verification, request: Request, response: Response, state: State
) -> dict[str, Any]:
    settings = state.settings
    email = _email(body.email)
    await _limit_ip(state, request)
    now = state.clock_ms()
    async with state.pool.acquire() as conn, conn.transaction():
        checked = await sessions.check_code(
            conn, otp.pepper(), email, body.code, now, settings.api_otp_max_attempts
        )
        if checked.verdict is sessions.Verdict.OK:
            try:
                user_id = await accounts.login_user(conn, email)
            except accounts.UnknownUser:
                raise web.invalid_email() from None
            session = await sessions.create_session(
                conn, user_id, now, settings.api_session_ttl_s * 1000
            )
    match checked.verdict:
        case sessions.Verdict.NO_CODE:
            raise web.no_code()
        case sessions.Verdict.EXPIRED:
            raise web.code_expired()
        case sessions.Verdict.WRONG:
            raise web.wrong_code(checked.attempts_left)
        case sessions.Verdict.BURNED:
            raise web.code_burned()
    web.set_cookies(response, settings, session)
    return {
        "userId": user_id,
        "email": email,
        "expiresAt": session.expires_ms,
        "token": session.token,
        "csrfToken": session.csrf_token,
    }


@router.post(
    "/logout",
    summary="Log out: revoke the session and clear its cookies",
    description="Cookie-authenticated calls need the `X-CSRF-Token` header.",
    responses=schemas.documented(schemas.Empty, "`{}`; the cookies are cleared", 401),
)
async def logout(session: web.CurrentSession, response: Response, state: State) -> dict[str, Any]:
    await sessions.revoke_session(state.pool, session.id)
    web.clear_cookies(response, state.settings)
    return {}


@router.get(
    "/session",
    summary="Who am I: the current session",
    response_model=SessionOut,
    responses=schemas.errors_only(401),
)
async def whoami(session: web.CurrentSession) -> dict[str, Any]:
    return {"userId": session.user_id, "email": session.email, "expiresAt": session.expires_ms}
