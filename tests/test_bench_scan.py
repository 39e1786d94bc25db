"""`bench scan --preset smoke --json`: the payload's structure and sanity (never its speed)."""

from __future__ import annotations

import json
import math

import pytest

from workbench import cli
from workbench.bench.scan import BWD_BYTES_PER_ELEMENT


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_bench_scan_smoke_json(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["bench", "scan", "--preset", "smoke", "--json", "--reports", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "scan.json").read_text()) == payload
    assert payload["preset"] == "smoke"
    for key in ("cpu_count", "torch_threads", "torch_version", "cpu_name"):
        assert payload["machine"][key]
    cpu = payload["cpu"]
    assert cpu["shape"] == [2, 256, 64] and cpu["dtype"] == "float32"
    assert _positive(cpu["copy_gbps"]) and _positive(cpu["add_gbps"])
    for name in ("reference", "cpu"):
        r = cpu["backends"][name]
        for key in ("fwd_s", "fwdbwd_s", "bwd_s", "fwd_gbps", "bwd_gbps", "fwdbwd_gbps"):
            assert _positive(r[key]), (name, key)
        # the rates follow from the times they were measured from (no wall-clock comparison: times are noisy)
        assert r["bwd_gbps"] * r["bwd_s"] == pytest.approx(BWD_BYTES_PER_ELEMENT * 2 * 256 * 64 * 4 / 1e9)
    for key in ("speedup_fwdbwd", "fwd_fraction_of_copy"):
        assert _positive(payload[key]) and payload[key] == cpu[key]
    assert set(payload["met"]) == set(payload["targets"])


def test_bench_scan_rejects_bad_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "scan", "--cpu-shape", "8,4096"])
