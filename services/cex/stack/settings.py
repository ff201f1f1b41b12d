"""Where the local stack listens and keeps its files; every value can be set by environment."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cex"


class StackSettings(BaseSettings):
    """Ports are deliberately not the components' defaults, so a system Kafka, Postgres or
    Redis on the same machine never clashes with ours."""

    model_config = SettingsConfigDict(env_prefix="CEX_STACK_", frozen=True)

    state_dir: Path = Path(".cex")
    cache_dir: Path = _default_cache_dir()
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_version: str = "3.9.1"
    kafka_heap: str = "1g"
    postgres_port: int = 15432
    postgres_user: str = "cex"
    postgres_password: str = "cex"
    postgres_database: str = "cex"
    redis_port: int = 16379
    ready_timeout_s: float = 90.0

    @cached_property
    def root(self) -> Path:
        return self.state_dir.resolve()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def endpoints_file(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def postgres_dsn(self) -> str:
        return (
            f"postgresql://{self.postgres_user}:{self.postgres_password}"
            f"@{self.host}:{self.postgres_port}/{self.postgres_database}"
        )

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"
