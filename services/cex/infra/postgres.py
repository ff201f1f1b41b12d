"""Postgres adapter: connection pools and the schema migrations.

Migrations are ordered SQL files in ``migrations/`` (``NNNN_name.sql``), applied in one
transaction each under an advisory lock, recorded with a checksum so an edited migration
is refused. A small runner rather than Alembic: the schema is plain SQL, every query uses
asyncpg, and Alembic would bring SQLAlchemy and a second driver stack for nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

MIGRATIONS_LOCK = 0x63657800  # "cex\0": one migrator at a time


class MigrationError(RuntimeError):
    """A migration already applied was changed, or one failed (its transaction rolled back)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("cex.infra.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(dsn: str) -> list[str]:
    """Apply the pending migrations; returns the names applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        done = []
        for migration in migrations():
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{migration.version}_{migration.name}: {exc}") from exc
            done.append(f"{migration.version:04d}_{migration.name}")
        return done
    finally:
        await conn.close()


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool
