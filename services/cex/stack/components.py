"""The three infrastructure components of the local stack: how each is installed, prepared,
run in the foreground under supervisord, and probed for readiness."""

from __future__ import annotations

import asyncio
import base64
import os
import pwd
import shutil
import subprocess
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cex.stack.settings import StackSettings


class StackError(RuntimeError):
    """A component could not be installed or started; the message says why and what to do."""


@dataclass(frozen=True)
class Program:
    """One supervisord program: a foreground command and the user it runs as."""

    name: str
    command: list[str]
    user: str | None = None
    stop_signal: str = "TERM"
    stop_wait_s: int = 60
    environment: dict[str, str] | None = None


class Component(Protocol):
    name: str
    ports: tuple[int, ...]

    def install(self) -> None: ...
    def prepare(self) -> None: ...
    def program(self) -> Program: ...
    def is_ready(self) -> bool: ...
    def endpoint(self) -> str: ...


def _run(cmd: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise StackError(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n{tail}")
    return result  # type: ignore[no-any-return]


def _unprivileged_user() -> str | None:
    """Postgres refuses to run as root: as root we run it as Debian's `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "running as root but no 'postgres' user exists; run scripts/bootstrap.sh "
            "(it installs Debian's postgresql package, which creates that user)"
        ) from None
    return "postgres"


def _make_reachable_by(path: Path, user: str) -> None:
    """Give `user` traverse rights down to `path` (the repo may sit under root-only dirs)."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if parent.stat().st_uid == 0 and not mode & 0o001:
            parent.chmod(mode | 0o001)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


class Kafka:
    """Apache Kafka in KRaft mode, one node acting as broker and controller, run from the
    `kafka_2.13` jars resolved from Maven Central (cached per version)."""

    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.ports: tuple[int, ...] = (settings.kafka_port, settings.kafka_controller_port)
        self.home = settings.cache_dir / f"kafka-{settings.kafka_version}"
        self.libs = self.home / "libs"
        self.data = settings.data_dir / "kafka"
        self.config = settings.root / "kafka"

    def install(self) -> None:
        marker = self.home / ".installed"
        if marker.exists():
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise StackError("java and mvn are needed to fetch Kafka; run scripts/bootstrap.sh")
        self.home.mkdir(parents=True, exist_ok=True)
        pom = self.home / "pom.xml"
        pom.write_text(_kafka_pom(self.s.kafka_version))
        if self.libs.exists():
            shutil.rmtree(self.libs)
        _run(
            [
                "mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime",
            ],
            "fetching Kafka jars with Maven",
        )  # fmt: skip
        marker.write_text(self.s.kafka_version)

    def prepare(self) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        (self.config / "server.properties").write_text(self._server_properties())
        (self.config / "log4j.properties").write_text(_KAFKA_LOG4J)
        if (self.data / "meta.properties").exists():
            return
        # A cluster id is a random UUID, base64url without padding (what `kafka-storage
        # random-uuid` prints).
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        _run(
            [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(self.config / "server.properties"), "--ignore-formatted"],
            "formatting Kafka storage",
        )  # fmt: skip

    def _java(self) -> list[str]:
        return [
            "java", f"-Xms{self.s.kafka_heap}", f"-Xmx{self.s.kafka_heap}",
            # Kafka's own JVM settings (kafka-run-class.sh): G1 at its default 200 ms pause
            # target made young collections of 40 ms, in the tail of every transaction.
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.s.log_dir}",
            f"-Dlog4j.configuration=file:{self.config / 'log4j.properties'}",
            "-cp", f"{self.libs}/*",
        ]  # fmt: skip

    def _server_properties(self) -> str:
        s = self.s
        return textwrap.dedent(f"""\
            # Written by cex stack; single node, loopback only.
            process.roles=broker,controller
            node.id=1
            controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}
            listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}
            advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}
            controller.listener.names=CONTROLLER
            inter.broker.listener.name=PLAINTEXT
            listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
            log.dirs={self.data}
            num.partitions=1
            auto.create.topics.enable=false
            offsets.topic.replication.factor=1
            offsets.topic.num.partitions=8
            transaction.state.log.replication.factor=1
            transaction.state.log.min.isr=1
            transaction.state.log.num.partitions=8
            group.initial.rebalance.delay.ms=0
            num.network.threads=2
            num.io.threads=4
            # KIP-890 part 1 verification (on by default since 3.6) checks each transactional
            # write with the coordinator; now and then that check fails transiently and the
            # broker answers NOT_ENOUGH_REPLICAS (produce) or COORDINATOR_NOT_AVAILABLE
            # (TxnOffsetCommit), which aiokafka retries after 100 ms: about one engine
            # transaction in a hundred took 100-200 ms. aiokafka adds a partition to the
            # transaction before writing to it, so the check guards nothing it needs.
            transaction.partition.verification.enable=false
            """)

    def program(self) -> Program:
        cmd = [*self._java(), "kafka.Kafka", str(self.config / "server.properties")]
        return Program(self.name, cmd, stop_wait_s=60)

    def is_ready(self) -> bool:
        return asyncio.run(_kafka_ready(self.endpoint()))

    def endpoint(self) -> str:
        return self.s.kafka_bootstrap


async def _kafka_ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    host, _, port = bootstrap.rpartition(":")
    # Probe the socket first: aiokafka logs every refused connection as an error.
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
    except (TimeoutError, OSError):
        return False
    writer.close()
    await writer.wait_closed()

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


class Postgres:
    """PostgreSQL from Debian's package, its own cluster in `.cex/data/postgres`."""

    name = "postgres"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.ports: tuple[int, ...] = (settings.postgres_port,)
        self.data = settings.data_dir / "postgres"
        self.user = _unprivileged_user()

    @staticmethod
    def bin_dir() -> Path:
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/postgres"),
            key=lambda p: int(p.parent.parent.name),
        )
        if not candidates:
            raise StackError("PostgreSQL is not installed; run scripts/bootstrap.sh")
        return candidates[-1].parent

    def install(self) -> None:
        self.bin_dir()

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        pwfile = self.data.parent / ".pgpass-init"
        pwfile.write_text(self.s.postgres_password + "\n")
        if self.user:
            _make_reachable_by(self.data, self.user)
            _make_reachable_by(pwfile, self.user)
        try:
            _run(
                [*self._as_user(), str(self.bin_dir() / "initdb"), "-D", str(self.data),
                 "-U", self.s.postgres_user, f"--pwfile={pwfile}", "-E", "UTF8",
                 "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"],
                "initdb",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def _as_user(self) -> list[str]:
        return ["runuser", "-u", self.user, "--"] if self.user else []

    def program(self) -> Program:
        cmd = [
            str(self.bin_dir() / "postgres"), "-D", str(self.data),
            "-p", str(self.s.postgres_port),
            "-c", f"listen_addresses={self.s.host}",
            "-c", f"unix_socket_directories={self.data}",
            "-c", "max_connections=300",
            "-c", "shared_buffers=256MB",
            "-c", "max_wal_size=2GB",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        # SIGINT is Postgres' "fast" shutdown: roll back sessions, checkpoint, exit.
        return Program(self.name, cmd, user=self.user, stop_signal="INT", stop_wait_s=60)

    def is_ready(self) -> bool:
        return asyncio.run(_postgres_ready(self.s))

    def endpoint(self) -> str:
        return self.s.postgres_dsn


async def _postgres_ready(s: StackSettings) -> bool:
    """Ready once it accepts connections; also makes sure the stack's database exists."""
    import asyncpg

    try:
        conn = await asyncpg.connect(
            host=s.host, port=s.postgres_port, user=s.postgres_user,
            password=s.postgres_password, database="postgres", timeout=3,
        )  # fmt: skip
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", s.postgres_database
        )
        if not exists:
            await conn.execute(f'CREATE DATABASE "{s.postgres_database}"')
        return True
    finally:
        await conn.close()


class Redis:
    """Redis from Debian's package. No persistence locally: engine snapshots are rebuilt
    by Kafka replay when Redis restarts empty (production values should enable AOF)."""

    name = "redis"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.ports: tuple[int, ...] = (settings.redis_port,)
        self.data = settings.data_dir / "redis"

    def install(self) -> None:
        if shutil.which("redis-server") is None:
            raise StackError("redis-server is not installed; run scripts/bootstrap.sh")

    def prepare(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)

    def program(self) -> Program:
        redis_server = shutil.which("redis-server") or "redis-server"
        cmd = [
            redis_server, "--port", str(self.s.redis_port), "--bind", self.s.host,
            "--save", "", "--appendonly", "no", "--dir", str(self.data),
            "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        return Program(self.name, cmd, stop_wait_s=20)

    def is_ready(self) -> bool:
        import redis

        client = redis.Redis(host=self.s.host, port=self.s.redis_port, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def endpoint(self) -> str:
        return self.s.redis_url


def infrastructure(settings: StackSettings) -> list[Component]:
    return [Postgres(settings), Redis(settings), Kafka(settings)]


def install_all(settings: StackSettings | None = None) -> None:
    for component in infrastructure(settings or StackSettings()):
        component.install()


def _kafka_pom(version: str) -> str:
    # Kafka 3.9 logs through the log4j 1.x API; reload4j is the maintained drop-in backend.
    return textwrap.dedent(f"""\
        <project xmlns="http://maven.apache.org/POM/4.0.0">
          <modelVersion>4.0.0</modelVersion>
          <groupId>dev.cex.local</groupId>
          <artifactId>kafka-runtime</artifactId>
          <version>{version}</version>
          <packaging>pom</packaging>
          <dependencies>
            <dependency>
              <groupId>org.apache.kafka</groupId>
              <artifactId>kafka_2.13</artifactId>
              <version>{version}</version>
            </dependency>
            <dependency>
              <groupId>org.apache.kafka</groupId>
              <artifactId>kafka-tools</artifactId>
              <version>{version}</version>
            </dependency>
            <dependency>
              <groupId>ch.qos.reload4j</groupId>
              <artifactId>reload4j</artifactId>
              <version>1.2.25</version>
            </dependency>
            <dependency>
              <groupId>org.slf4j</groupId>
              <artifactId>slf4j-reload4j</artifactId>
              <version>1.7.36</version>
            </dependency>
          </dependencies>
        </project>
        """)


_KAFKA_LOG4J = textwrap.dedent("""\
    log4j.rootLogger=INFO, stdout
    log4j.appender.stdout=org.apache.log4j.ConsoleAppender
    log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
    log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
    log4j.logger.kafka.request.logger=WARN
    log4j.logger.state.change.logger=WARN
    log4j.logger.org.apache.kafka.controller=WARN
    """)
