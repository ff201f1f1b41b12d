"""The public API's settings (pydantic-settings, `CEX_API_*` on top of the shared `CEX_*`).

The secrets-at-rest keys are `cex.infra.secretbox.SecretsSettings` (shared with `cex admin`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from cex.infra.settings import InfraSettings


class ApiSettings(InfraSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    api_host: str = "127.0.0.1"
    api_port: int = 18200
    #: The internal trading API (only the public API may reach it: chart NetworkPolicy).
    trading_url: str = "http://127.0.0.1:18100"
    #: Deposits without an operator (dev stacks only).
    api_faucet_enabled: bool = False
    #: Where the console/file OTP sender writes codes (dev and tests); None logs nothing.
    api_otp_outbox: Path | None = None
    #: Bearer token of the operator role (credits deposits, completes withdrawals).
    api_operator_token: str | None = None
    api_session_ttl_s: int = 7 * 24 * 3600
    #: Email login codes: lifetime, wrong guesses that burn a code, and rate limits per
    #: fixed window (codes sent per email; login requests per client IP).
    api_otp_ttl_s: int = 300
    api_otp_max_attempts: int = 5
    api_otp_window_s: int = 600
    api_otp_per_email: int = 5
    api_auth_per_ip: int = 30
    #: Most the faucet credits in one request, in whole units of the asset (decimal string).
    api_faucet_max: str = "100000"
    #: Binance's limits, enforced and published in exchangeInfo's rateLimits.
    api_weight_per_minute: int = 6000
    api_orders_per_10s: int = 100
    api_orders_per_day: int = 200_000
    #: How long RESULT / FULL responses wait for the engine's outcome.
    api_result_wait_s: float = 2.0
