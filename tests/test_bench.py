"""Tests of the benchmark harness (what it measures, not how fast anything is)."""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

from attnkit import bench, scaled_dot_product_attention

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def test_naive_attention_is_attention():
    q, k, v = bench.make_inputs(33, d=8, batch=2, heads=3)
    want = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(bench.naive_attention(q, k, v), want)


@pytest.mark.parametrize("name", ["naive", "torch_sdpa", "tiled"])
def test_full_attention_methods_agree_with_dense(name):
    q, k, v = bench.make_inputs(200, d=16, batch=1, heads=2)
    fn = bench.METHODS[name].build(200, 16, torch.Generator().manual_seed(0))
    torch.testing.assert_close(fn(q, k, v), scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("name", list(bench.METHODS))
def test_every_method_builds_and_runs(name):
    n, d = 256, 16
    q, k, v = bench.make_inputs(n, d=d, batch=1, heads=2)
    out = bench.METHODS[name].build(n, d, torch.Generator().manual_seed(0))(q, k, v)
    assert out.shape == (1, 2, n, d)
    assert torch.isfinite(out).all()


def test_loglog_slope_recovers_the_exponent():
    ns = [1024, 2048, 4096, 8192]
    assert bench.loglog_slope(ns, [3.0 * n**2 for n in ns]) == pytest.approx(2.0)
    assert bench.loglog_slope(ns, [0.5 * n for n in ns]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least two"):
        bench.loglog_slope([1], [1.0])


def test_sparse_stride_is_the_power_of_two_nearest_sqrt_n():
    assert bench.sparse_stride(1024) == 32
    assert bench.sparse_stride(4096) == 64
    assert bench.sparse_stride(2048) in (32, 64)


def test_time_call_takes_the_minimum_and_validates():
    calls = []
    assert bench.time_call(lambda: calls.append(1), repeats=4, warmup=2) >= 0.0
    assert len(calls) == 6
    with pytest.raises(ValueError, match="repeats"):
        bench.time_call(lambda: None, repeats=0)


def test_time_in_turns_alternates_and_takes_each_minimum():
    order = []
    # hundredths of a second per call: the warm-up call is the shortest, so a timed
    # warm-up would show in the minimum
    fake_seconds = {"a": iter([0.0, 0.4, 0.2]), "b": iter([0.0, 0.3, 0.6])}

    def make(name):
        def fn():
            order.append(name)
            time.sleep(next(fake_seconds[name]) / 100)

        return fn

    best = bench.time_in_turns({"a": make("a"), "b": make("b")}, repeats=2, warmup=1)
    assert order == ["a", "b", "a", "b", "a", "b"]  # warm-up round, then turns
    assert list(best) == ["a", "b"]
    assert best["a"] >= 0.002 and best["b"] >= 0.003  # minima of the timed rounds only
    with pytest.raises(ValueError, match="repeats"):
        bench.time_in_turns({"a": lambda: None}, repeats=0)
    with pytest.raises(TypeError, match="fns"):
        bench.time_in_turns({})
    with pytest.raises(TypeError, match="fns"):
        bench.time_in_turns({"a": 1})


@linux_only
def test_measure_peak_extra_sees_a_torch_allocation():
    size = 200 * 2**20

    def allocate():
        x = torch.ones(size // 4)  # 200 MiB, touched
        return float(x[-1])

    extra = bench.measure_peak_extra(allocate)
    assert 0.9 * size <= extra <= 1.3 * size


@linux_only
def test_peak_extra_memory_of_naive_attention_is_two_score_matrices():
    n, heads = 2048, 2
    extra = bench.peak_extra_memory("naive", n, d=16, heads=heads)
    one_matrix = heads * n * n * 4
    # the scores and their softmax live at the same time; the output is small
    assert 1.8 * one_matrix <= extra <= 2.5 * one_matrix


def test_unknown_method_is_named_in_the_error():
    with pytest.raises(ValueError, match="unknown method 'flash9'"):
        bench.peak_extra_memory("flash9", 128)
    with pytest.raises(ValueError, match="unknown method"):
        bench.run(["flash9"])


def _synthetic() -> bench.Results:
    res = bench.Results(d=64, batch=1, heads=4, threads=2)
    for n in (1024, 2048, 4096, 8192, 16384, 32768):
        if n <= 16384:
            res.points.append(bench.Point("naive", n, 1e-9 * n**2, 8 * n**2))
            res.points.append(bench.Point("torch_sdpa", n, 0.25e-9 * n**2, 100 * n))
            res.points.append(bench.Point("tiled", n, 0.3e-9 * n**2, 200 * n))
        for name in ("local", "linformer", "performer"):
            res.points.append(bench.Point(name, n, 1e-6 * n, 1000 * n))
    return res


def test_targets_are_computed_from_the_points():
    res = _synthetic()
    got = {t.text: t.check(res) for t in bench.TARGETS}
    value, ok = got["tiled throughput / torch SDPA throughput at n=4096"]
    assert value == pytest.approx(0.25 / 0.3) and ok
    value, ok = got["naive peak extra memory / tiled's at n=8192"]
    assert value == pytest.approx(8 * 8192**2 / (200 * 8192)) and ok
    value, ok = got["local (window ±128) log-log time slope, n=4K..32K"]
    assert value == pytest.approx(1.0) and ok
    value, ok = got["Linformer (k=128) speed-up over naive at n=4096"]
    assert value == pytest.approx(1e-9 * 4096**2 / (1e-6 * 4096)) and ok
    slow = bench.Results(d=64, batch=1, heads=4, threads=2)
    slow.points += [bench.Point("tiled", 4096, 1.0), bench.Point("torch_sdpa", 4096, 0.5)]
    assert bench.TARGETS[0].check(slow) == (0.5, False)
    assert bench.TARGETS[3].check(slow) == (None, None)  # not measured


def test_results_round_trip_through_json_and_tables_show_ratios():
    res = _synthetic()
    back = bench.Results.from_json(json.loads(json.dumps(res.to_json())))
    assert back == res
    table = bench.format_tables(res)
    assert "peak extra memory" in table and "torch_sdpa" in table
    assert "(1.00/ 4.00)" in table  # naive: 1x naive, 4x SDPA's time
    assert "MISSED" not in bench.format_targets(res)


def test_series_skips_missing_points():
    res = bench.Results(d=8, batch=1, heads=1, threads=1)
    res.points += [bench.Point("naive", 64, 1.0), bench.Point("naive", 32, 0.5, 10)]
    assert res.series("naive") == ([32, 64], [0.5, 1.0])
    assert res.series("naive", "peak_extra_bytes") == ([32], [10])


def test_command_line_runs_a_small_benchmark(tmp_path, capsys):
    out = tmp_path / "res.json"
    code = bench.main(
        ["--methods", "naive", "tiled", "--n", "128", "256", "--no-memory", "--json", str(out)]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert {(p["method"], p["n"]) for p in data["points"]} == {
        (m, n) for m in ("naive", "tiled") for n in (128, 256)
    }
    assert all(p["seconds"] > 0 and p["peak_extra_bytes"] is None for p in data["points"])
    assert "targets:" in capsys.readouterr().out


def test_command_line_rejects_bad_arguments():
    with pytest.raises(SystemExit, match="unknown method"):
        bench.main(["--methods", "nope", "--no-memory"])
    with pytest.raises(SystemExit, match="--heads must be a positive integer"):
        bench.main(["--heads", "0"])


def test_saved_for_backward_counts_distinct_storages():
    x = torch.randn(1000, requires_grad=True)  # 4,000 bytes
    assert bench.saved_for_backward(lambda: x * x) == [4000]  # x saved twice, counted once
    assert sorted(bench.saved_for_backward(lambda: x.exp() * x)) == [4000, 4000]  # exp(x), x
    assert bench.saved_for_backward(lambda: x + 1) == []  # addition saves nothing
    with torch.no_grad():
        assert bench.saved_for_backward(lambda: x.exp()) == []


def test_saved_for_backward_sees_the_n_by_n_weights():
    n = 64
    q, k, v = (torch.randn(1, 2, n, 8, requires_grad=True) for _ in range(3))
    sizes = bench.saved_for_backward(lambda: bench.naive_attention(q, k, v))
    assert max(sizes) == 1 * 2 * n * n * 4


def test_load_committed_reads_the_books_benchmark_and_says_where_it_comes_from(tmp_path):
    res, provenance = bench.load_committed()
    assert res.points and res.get("naive", 1024) is not None
    assert provenance[0] == f"file: {bench.COMMITTED}"
    assert provenance[1].startswith("measured on: cpu = ")
    assert provenance[3] == f"inputs (B, H, n, d) = ({res.batch}, {res.heads}, n, {res.d}), " + (
        "float32, forward pass only"
    )
    with pytest.raises(FileNotFoundError, match=r"python -m attnkit\.bench --json"):
        bench.load_committed(tmp_path / "missing.json")
