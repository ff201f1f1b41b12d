"""Smoke test of ``cex bench engine``: figures come out, with the advertised keys."""

from cex.bench import engine as bench


def test_bench_runs_both_workloads_and_describes_them() -> None:
    results = list(bench.run(ops=3_000))
    assert [r["workload"] for r in results] == ["exchange-core-mix", "deep-sweep"]
    for r in results:
        for key in ("ops", "ops_per_sec", "p50_us", "p99_us", "p999_us", "peak_memory_mb"):
            assert r[key] > 0, key
        assert r["p50_us"] <= r["p99_us"] <= r["p999_us"]
        assert r["workload"] in bench.describe(r)
    mix = results[0]["mix"]
    assert abs(mix["amend"] - 0.82) < 0.05
    assert results[0]["ops"] == 3_000
    assert results[1]["trades"] > results[1]["ops"]  # each sweep takes many makers
