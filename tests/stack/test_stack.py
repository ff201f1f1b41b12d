"""The local stack's own behaviour: clear errors on a taken port or a failed start, and a
`down` that leaves no process and no listening port behind.

These start a second, throwaway stack (own state dir, own ports) beside the shared one.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cex.stack import supervisor
from cex.stack.components import StackError
from cex.stack.settings import StackSettings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[StackSettings]:
    settings = StackSettings(
        state_dir=tmp_path / "state",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        postgres_port=_free_port(),
        redis_port=_free_port(),
    )
    yield settings
    supervisor.down(settings)


def test_taken_port_is_reported_with_its_owner(throwaway: StackSettings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", throwaway.redis_port))
        squatter.listen()
        with pytest.raises(StackError, match=rf"redis: port 127\.0\.0\.1:{throwaway.redis_port}"):
            supervisor.up(infra_only=True, settings=throwaway)
    assert supervisor.status(throwaway)["supervisord"] is False


def test_failed_start_shows_log_tail_and_down_leaves_no_port(
    throwaway: StackSettings,
) -> None:
    # A corrupt Redis dump makes redis-server exit at start, after the port checks.
    redis_dir = throwaway.data_dir / "redis"
    redis_dir.mkdir(parents=True)
    (redis_dir / "dump.rdb").write_bytes(b"REDIS9999not-a-real-dump")

    with pytest.raises(StackError, match=r"redis failed to start[\s\S]*RDB format version 9999"):
        supervisor.up(infra_only=True, settings=throwaway)
    # The others did start, and `down` still stops them all.
    assert _listening(throwaway.postgres_port)

    supervisor.down(throwaway)
    ports = (throwaway.postgres_port, throwaway.redis_port, throwaway.kafka_port)
    assert not any(_listening(p) for p in ports)
    assert supervisor.status(throwaway)["supervisord"] is False


def test_up_writes_endpoints_and_down_stops_everything(throwaway: StackSettings) -> None:
    endpoints = supervisor.up(infra_only=True, settings=throwaway)

    written = json.loads(throwaway.endpoints_file.read_text())
    assert written == endpoints
    assert written["kafka"] == f"127.0.0.1:{throwaway.kafka_port}"
    assert written["redis"] == f"redis://127.0.0.1:{throwaway.redis_port}/0"
    assert f"@127.0.0.1:{throwaway.postgres_port}/" in written["postgres"]
    assert supervisor.infrastructure_ready(throwaway)

    # A second `up` reuses what runs instead of failing on its own ports.
    assert supervisor.up(infra_only=True, settings=throwaway) == endpoints

    supervisor.down(throwaway)
    ports = (throwaway.postgres_port, throwaway.redis_port, throwaway.kafka_port)
    assert not any(_listening(p) for p in ports)
    assert not throwaway.endpoints_file.exists()
