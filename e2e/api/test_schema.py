"""schemathesis (the CLI, in a subprocess) against the running exchange's OpenAPI schema:
every operation, with generated valid and invalid inputs, never answers 5xx, and every
response whose status the schema declares matches its schema. Signed endpoints mostly
answer 4xx to unsigned requests: that is fine, the point is no 5xx. The operator endpoints
get a second run with the operator's token, so their bodies reach the handlers.

Bounded: a few examples per operation, and a hard timeout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import Exchange

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def run(exchange: Exchange, tmp_path: Path, *extra: str, timeout: float) -> None:
    report = tmp_path / "report.xml"
    command = [
        str(SCHEMATHESIS), "run", f"{exchange.url}/openapi.json",
        "--checks", CHECKS, "--max-examples", "15", "--seed", "1", "--workers", "1",
        "--request-timeout", "10", "--phases", "examples,coverage,fuzzing",
        "--suppress-health-check", "all", "--report", "junit",
        "--report-junit-path", str(report), *extra,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20_000:]
    assert " passed" in output, output[-5_000:]


async def test_no_operation_answers_5xx_or_off_schema(exchange: Exchange, tmp_path: Path) -> None:
    run(exchange, tmp_path, "--exclude-path-regex", "^/cex/v1/operator/", timeout=120)


async def test_operator_operations_with_the_token(exchange: Exchange, tmp_path: Path) -> None:
    run(exchange, tmp_path, "--include-path-regex", "^/cex/v1/operator/",
        "-H", f"Authorization: Bearer {exchange.operator_token}", timeout=60)  # fmt: skip
