"""Settings shared by every service, read from environment variables (pydantic-settings).

Defaults point at the local stack (`make up`); outside `CEX_ENVIRONMENT=dev` the default
database password is refused, so a production deployment cannot start on a dev secret.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_POSTGRES_DSN = "postgresql://cex:cex@127.0.0.1:15432/cex"


class InfraSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    environment: Literal["dev", "test", "prod"] = "dev"
    kafka_bootstrap: str = "127.0.0.1:19092"
    postgres_dsn: str = DEV_POSTGRES_DSN
    redis_url: str = "redis://127.0.0.1:16379/0"
    # Prefix of every Redis key and channel, so several stacks (or tests) share one Redis.
    redis_prefix: str = "cex"
    orders_topic: str = "orders"
    executions_topic: str = "executions"

    @model_validator(mode="after")
    def _no_dev_secrets_in_prod(self) -> Self:
        if self.environment == "prod" and self.postgres_dsn == DEV_POSTGRES_DSN:
            raise ValueError("CEX_POSTGRES_DSN must be set outside dev: refusing the dev default")
        return self
