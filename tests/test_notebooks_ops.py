"""The SSM primer notebook runs headlessly, and the teaching helpers it calls say true things."""

from __future__ import annotations

import json
import math

import nbformat
import pytest
import torch

from workbench.ops import notebook as primer
from workbench.pipeline.notebooks import run_notebook


def test_impulse_response_is_geometric_with_the_gates_decay() -> None:
    setting = primer.GateSetting(lam=3.0, gate_a=0.5, gate_x=-1.0)
    r = primer.impulse_response(setting, steps=30)
    a = math.exp(setting.c * torch.sigmoid(torch.tensor(0.5)).item() * math.log(torch.sigmoid(torch.tensor(3.0)).item()))
    assert r["a"] == pytest.approx(a, rel=1e-5)
    h0 = torch.sigmoid(torch.tensor(-1.0)).item() * math.sqrt(1 - a * a)
    assert r["h"][:5] == pytest.approx([h0 * a ** k for k in range(5)], rel=1e-5)
    assert r["memory"] == pytest.approx(-1 / math.log(a))


def test_c_rescales_the_memory_length() -> None:
    base = primer.decay(primer.GateSetting(lam=5.0, c=8.0))
    half = primer.decay(primer.GateSetting(lam=5.0, c=4.0))
    assert primer.effective_memory(half) == pytest.approx(2 * primer.effective_memory(base), rel=1e-4)
    assert primer.effective_memory(0.0) == 0.0 and primer.effective_memory(1.0) == math.inf


def test_memory_costs_grow_only_for_convolution_and_attention() -> None:
    costs = primer.memory_costs([10, 1000], d=16)
    assert costs["recurrence (RG-LRU state)"] == [64.0, 64.0]
    assert costs["attention (KV cache)"] == [640.0, 64000.0]
    assert costs["long convolution (input history)"][1] == 100 * costs["long convolution (input history)"][0]


def test_figures_and_explorer_build() -> None:
    assert len(primer.impulse_figure().data) == 3
    assert len(primer.memory_cost_figure([8, 16]).data) == 3
    assert primer.impulse_explorer() is not None


def test_ssm_primer_notebook_runs(tmp_path) -> None:
    out = run_notebook("02_ssm_primer", tmp_path, {"preset": "smoke", "reports": str(tmp_path)})
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    scan = json.loads((tmp_path / "scan.json").read_text())
    assert scan["preset"] == "smoke" and scan["cpu"]["shape"] == [2, 256, 64]
    figures = [o for c in nb.cells for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) >= 3  # impulse responses, memory cost, bandwidth: drawn statically, not only as widgets
