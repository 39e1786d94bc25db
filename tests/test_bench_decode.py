"""`bench decode`: the payload's structure and sanity, the memory accounting and the batch search (never speed)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from workbench import cli
from workbench.bench.decode import (
    PRESETS,
    _LiveBytes,
    extend,
    find_max_batch,
    integrate,
    run_decode_bench,
    state_bytes,
    step_peak_bytes,
)
from workbench.core.config import override
from workbench.lm.generate import stream
from workbench.lm.model import build_model, model_config


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _model(kind: str):
    torch.manual_seed(0)
    return build_model(model_config("smoke", kind)).eval()


def _cache(model, length: int, batch: int = 1):
    return extend(model, model.init_cache(batch), length, 16, torch.Generator().manual_seed(0))


def test_bench_decode_smoke_json(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["bench", "decode", "--preset", "smoke", "--json", "--reports", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "decode.json").read_text()) == payload
    assert (tmp_path / "decode.md").read_text().startswith("# Decoding efficiency")
    assert payload["preset"] == "smoke"
    for key in ("cpu_count", "torch_threads", "torch_version", "cpu_name"):
        assert payload["machine"][key]
    assert len(payload["machine"]["load_average"]) == 3 and len(payload["load_average_end"]) == 3
    lengths = list(PRESETS["smoke"].lengths)
    models = payload["models"]
    assert set(models) == {"griffin", "transformer"}
    for m in models.values():
        assert _positive(m["parameters"]) and _positive(m["prefill_s"]) and _positive(m["prompt_latency_s"])
        assert [r["length"] for r in m["lengths"]] == lengths
        for r in m["lengths"]:
            for key in ("decode_s", "decode_s_integrated", "latency_s", "peak_bytes_batch1", "batch",
                        "peak_bytes_batch", "batch_latency_s", "throughput_tok_s", "state_bytes"):
                assert _positive(r[key]), (r["length"], key)
            assert r["state_bytes"] == r["cache_bytes_measured"]
            assert r["peak_bytes_batch"] <= PRESETS["smoke"].budget_mb * 2**20
            assert r["peak_bytes_batch1"] >= 2 * r["state_bytes"] - 8  # old and new cache coexist in a step
            assert not r["integrated"] and _positive(r["decode_s_measured"])  # smoke decodes every length fully
        flat = m["flatness"]
        assert (flat["short"], flat["long"]) == (128, 256) and len(flat["rounds"]) == PRESETS["smoke"].flatness_rounds
        assert _positive(flat["ratio"]) and all(_positive(r["ratio"]) for r in flat["rounds"])
        decode = [r["decode_s"] for r in m["lengths"]]
        assert decode == sorted(decode)  # read off one stream: longer samples include shorter ones
    g, t = models["griffin"]["lengths"], models["transformer"]["lengths"]
    assert len({r["state_bytes"] for r in g}) == 1  # constant-size state
    assert t[-1]["state_bytes"] > t[0]["state_bytes"]
    assert t[-1]["batch"] < t[0]["batch"]  # a growing cache leaves room for fewer rows
    assert [r["length"] for r in payload["ratios"]] == lengths
    for key in ("griffin_latency_ratio_16k_vs_128", "throughput_ratio_16k", "decode_time_ratio_16k",
                "griffin_peak_memory_ratio_16k_vs_128"):
        assert _positive(payload[key]), key
    assert payload["ratio_lengths"] == {"short": 128, "long": 256}
    assert payload["griffin_latency_ratio_16k_vs_128"] == models["griffin"]["flatness"]["ratio"]
    assert payload["throughput_ratio_16k"] == pytest.approx(g[-1]["throughput_tok_s"] / t[-1]["throughput_tok_s"])


@pytest.mark.parametrize("kind", ["griffin", "transformer"])
def test_state_bytes_match_the_real_cache(kind: str) -> None:
    model = _model(kind)
    sizes = {}
    for length in (8, 24, 40):
        sizes[length] = _cache(model, length, batch=2).nbytes()
        assert sizes[length] == state_bytes(model.config, length, batch=2)
    for t in _tensors(_cache(model, 40)):  # no cache tensor pins a larger storage (e.g. a prefill chunk)
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size()
    if kind == "griffin":
        assert len(set(sizes.values())) == 1
    else:  # one key, one value and one int64 index per attention layer and token
        per_token = 2 * model.config.num_layers * (2 * model.config.head_dim * 4 + 8)
        assert sizes[24] - sizes[8] == 16 * per_token and sizes[40] - sizes[24] == 16 * per_token


def test_state_bytes_laptop_scale() -> None:
    griffin, transformer = model_config("laptop", "griffin"), model_config("laptop", "transformer")
    assert state_bytes(griffin, 128) == state_bytes(griffin, 16384)
    growth = state_bytes(transformer, 16384) - state_bytes(transformer, 8192)
    assert growth == state_bytes(transformer, 8192) - state_bytes(transformer, 0) > 0


def test_live_bytes_tracker_counts_allocations_and_frees() -> None:
    a = torch.ones(1000)  # 4000 bytes, alive on entry
    with _LiveBytes([a]) as tracker:
        b = a + 1  # 8000 live
        del b
        c = a * 2  # b was freed: still 8000
        d = torch.cat([a, c])  # 16000
        del c, d
    assert tracker.peak == 16000
    w = torch.ones(500)  # allocated outside the tracker, like the model's weights
    with _LiveBytes([]) as tracker:
        _ = w.t()[:10]  # views allocate nothing
    assert tracker.peak == 0


def test_stream_continuing_a_cache_leaves_it_unchanged() -> None:
    for kind in ("griffin", "transformer"):
        model = _model(kind)
        cache = _cache(model, 20)
        before = [t.clone() for t in _tensors(cache)]
        tokens = list(stream(model, torch.zeros(1, 1, dtype=torch.long), 3, cache=cache))
        assert len(tokens) == 3 and cache.index == 20
        assert all(torch.equal(x, y) for x, y in zip(before, _tensors(cache)))


def _tensors(cache):
    from workbench.bench.decode import _tensors as flatten

    return flatten(cache)


def test_batch_search_respects_the_budget() -> None:
    model = _model("transformer")
    cache = _cache(model, 64)
    budget = 256 * 1024
    token = torch.zeros(1, 1, dtype=torch.long)
    found = find_max_batch(model, cache, budget)
    assert found["batch"] >= 2 and found["peak_bytes"] <= budget
    assert all(t["peak_bytes"] > budget for t in found["trials"] if t["batch"] > found["batch"])
    from workbench.bench.decode import tile_cache

    assert step_peak_bytes(model, tile_cache(cache, found["batch"]), token.expand(found["batch"], 1)) <= budget
    double = 2 * found["batch"]  # the largest, give or take: twice as many rows do not fit
    assert step_peak_bytes(model, tile_cache(cache, double), token.expand(double, 1)) > budget
    assert find_max_batch(model, cache, 1024)["batch"] == 0  # not even one row


def test_budget_too_small_is_a_clear_error() -> None:
    with pytest.raises(cli.UserError, match="budget"):
        run_decode_bench(override(PRESETS["smoke"], budget_mb=0.01))


def test_integrate_is_exact_for_piecewise_linear_latency() -> None:
    assert integrate({0: 1.0, 100: 2.0}, 0, 100) == pytest.approx(150.0)
    assert integrate({10: 1.0, 20: 1.0}, 0, 30) == pytest.approx(30.0)  # constant outside the measured points
    assert integrate({0: 1.0, 10: 2.0, 20: 2.0}, 5, 15) == pytest.approx(1.75 * 5 + 2.0 * 5)


def test_efficiency_notebook_smoke(tmp_path) -> None:
    import nbformat

    from workbench.pipeline.notebooks import run_notebook

    reports = tmp_path / "reports"
    out = run_notebook("06_efficiency", tmp_path, {"preset": "smoke", "reports": str(reports)})
    nb = nbformat.read(out, as_version=4)
    assert sum(1 for c in nb.cells for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})) == 4
    payload = json.loads((reports / "decode.json").read_text())
    assert payload["preset"] == "smoke" and (reports / "decode.md").exists()
