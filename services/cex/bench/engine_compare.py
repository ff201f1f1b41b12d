"""``python -m cex.bench.engine_compare --rev REV``: ``cex bench engine`` for this checkout's
matching engine and the one of an older commit, side by side in one process.

The baseline's single-module engine (``services/cex/core/engine.py`` at ``REV``, the layout
before the engine was split into ``cex.core.matching``) is read from a temporary
``git worktree`` of ``REV`` and loaded under a module name of its own; it runs against this
checkout's ``events``, ``market`` and ``errors`` (compatible by their versioning rules),
so only the matching code differs. Both engines get the very same pre-generated commands and
book snapshots; first, untimed, their outputs are checked byte-identical. Then each round
times both engines on both workloads, alternating which goes first, so that a neighbour's
load on a shared machine hits both alike. Prints one JSON object per workload: each engine's
median ops/s (and every round's), p50/p99 of the median round, the median CPU seconds of a
run (the steadier figure on a shared machine) and ``current / baseline`` of both.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from cex.bench import engine as bench
from cex.core.events import Command, encode
from cex.core.matching import MatchingEngine

REPO = Path(__file__).resolve().parents[3]
BASELINE_MODULE = "services/cex/core/engine.py"


def load_baseline(rev: str, workdir: Path) -> type[MatchingEngine]:
    """The ``MatchingEngine`` class of ``rev``, from a detached worktree under ``workdir``."""
    tree = workdir / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree), rev],
        check=True,
    )
    try:
        source = tree / BASELINE_MODULE
        if not source.exists():
            raise SystemExit(f"{rev} has no {BASELINE_MODULE} (only single-module engines)")
        spec = importlib.util.spec_from_file_location("cex_baseline_engine", source)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True
        )
    engine_class: type[MatchingEngine] = module.MatchingEngine
    return engine_class


def _outputs(engine_class: type[MatchingEngine], snapshot: bytes, commands: list[Command]) -> bytes:
    engine = engine_class.restore(snapshot)
    out = bytearray()
    for offset, command in enumerate(commands):
        for event in engine.apply(command, offset):
            out += encode(event)
    return bytes(out + engine.snapshot())


def compare(rev: str, ops: int, rounds: int, seed: int = 42) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cex-bench-") as workdir:
        baseline = load_baseline(rev, Path(workdir))
    engines = {"baseline": baseline, "current": MatchingEngine}
    mix_snapshot, mix = bench.mix_workload(ops, seed)
    sweep_snapshot, sweeps = bench.sweep_workload(ops, seed)
    for snapshot, commands in ((mix_snapshot, mix), (sweep_snapshot, [c for _, c in sweeps])):
        if _outputs(baseline, snapshot, commands) != _outputs(MatchingEngine, snapshot, commands):
            raise SystemExit("the two engines' outputs differ: not the same behaviour")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(rounds):
        order = ["baseline", "current"] if round_ % 2 == 0 else ["current", "baseline"]
        for name in order:
            engine_class = engines[name]
            for measure in (
                partial(bench.measure_mix, mix_snapshot, mix, engine_class),
                partial(bench.measure_sweeps, sweep_snapshot, sweeps, engine_class),
            ):
                cpu = time.thread_time_ns()
                result = measure()
                # CPU time of the whole run (restore and untimed refills included): on a
                # shared machine, waiting for a core inflates wall time, not this.
                result["cpu_seconds"] = (time.thread_time_ns() - cpu) / 1e9
                runs.setdefault((result["workload"], name), []).append(result)
    figures = []
    for workload in ("exchange-core-mix", "deep-sweep"):
        row: dict[str, Any] = {"workload": workload, "ops": ops, "rounds": rounds, "rev": rev}
        for name in ("baseline", "current"):
            results = sorted(runs[workload, name], key=lambda r: r["ops_per_sec"])
            median = results[len(results) // 2]
            row[name] = {
                "ops_per_sec": round(statistics.median(r["ops_per_sec"] for r in results)),
                "ops_per_sec_runs": [r["ops_per_sec"] for r in runs[workload, name]],
                "p50_us": median["p50_us"],
                "p99_us": median["p99_us"],
                "cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in results), 3),
            }
        row["current_over_baseline"] = round(
            row["current"]["ops_per_sec"] / row["baseline"]["ops_per_sec"], 3
        )
        row["cpu_current_over_baseline"] = round(
            row["current"]["cpu_seconds"] / row["baseline"]["cpu_seconds"], 3
        )
        figures.append(row)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="the baseline commit (single-module engine)")
    parser.add_argument("--ops", type=int, default=200_000, help="operations per workload")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per engine")
    args = parser.parse_args(argv)
    for row in compare(args.rev, args.ops, args.rounds):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
