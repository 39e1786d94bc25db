"""The speech LM on a CUDA device (`make test-gpu`): the forward pass under bf16 autocast (fp32 weights) against
fp32, decoding step by step on the GPU equals the full-sequence pass, sampling runs under autocast, and a few
FSDP training steps on one GPU (a one-process group, activation checkpointing on) train what plain
single-GPU training does and resume exactly from the sharded checkpoint.

Every check is a function of the device, so the same logic runs on the CPU where no GPU is visible (the
`test_cpu_*` tests, not marked `gpu`): what `make test-gpu` runs is known to be able to pass.

Under bf16 autocast the RG-LRU's gates once came out fp32 (the fp32 bias promoted the bf16 einsum) and `rglru`
refused the mixed dtypes, so Griffin could not run under `precision="auto"` on a GPU: the bf16 CPU tests here
found it and now guard the fix in `BlockDiagonalLinear.forward`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from workbench.core.checkpoint import latest_checkpoint
from workbench.core.device import autocast
from workbench.lm.config import ModelConfig, train_config
from workbench.lm.data import SYNTHETIC_PRESETS, write_synthetic_tokens
from workbench.lm.generate import generate
from workbench.lm.model import build_model, model_config
from workbench.lm.train import read_metrics, train

# wider than smoke so bf16 rounding is exercised in real matmuls; a window shorter than the sequence
SHAPE = ModelConfig(vocab_size=256, width=128, num_layers=3, num_heads=4, attention_window=32)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def inputs(device: str, b: int = 2, t: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, SHAPE.vocab_size, (b, t), generator=g)
    resets = torch.zeros(b, t, dtype=torch.bool)
    resets[1, 37] = True
    return tokens.to(device), resets.to(device)


def check_bf16_forward(device: str) -> None:
    """bf16 autocast vs fp32 on the same fp32 weights: logits within 0.1 (soft-capped at 30), the mean NLL
    within 2% (bf16 keeps 8 bits of mantissa: ~0.4% per rounding)."""
    torch.manual_seed(0)
    model = build_model(SHAPE, device).eval()
    tokens, resets = inputs(device)
    with torch.no_grad():
        exact, _ = model(tokens, resets)
        with autocast(torch.device(device), "bf16"):
            fast, _ = model(tokens, resets)
    assert next(model.parameters()).dtype == torch.float32 and fast.dtype == torch.float32
    assert torch.isfinite(fast).all()
    nll = lambda logits: F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())  # noqa: E731
    assert (fast - exact).abs().max().item() <= 0.1
    assert abs(nll(fast).item() - nll(exact).item()) <= 0.02 * nll(exact).item()


def check_decoding(device: str) -> None:
    """Prefill + one token at a time (with the decode cache on the device) == the full-sequence pass (fp32),
    and seeded sampling under autocast gives valid tokens on the device."""
    torch.manual_seed(1)
    model = build_model(SHAPE, device).eval()
    tokens, resets = inputs(device, t=80)
    with torch.no_grad():
        full, _ = model(tokens, resets)
        cache = model.init_cache(2, device=device)
        logits, cache = model(tokens[:, :7], resets[:, :7], cache)
        steps = [logits]
        for i in range(7, tokens.shape[1]):
            logits, cache = model(tokens[:, i:i + 1], resets[:, i:i + 1], cache)
            steps.append(logits)
    assert cache.positions.device.type == torch.device(device).type
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-4
    out = generate(model, tokens[:, :10], 30, temperature=1.0, top_k=20, seed=3)
    again = generate(model, tokens[:, :10], 30, temperature=1.0, top_k=20, seed=3)
    assert out.shape == (2, 40) and out.device.type == torch.device(device).type
    assert torch.equal(out, again) and int(out.max()) < SHAPE.vocab_size and int(out.min()) >= 0


def check_fsdp_steps(device: str, root) -> None:
    """4 steps of FSDP (one process, activation checkpointing) == 4 plain steps (fp32, 1e-4: the devices'
    kernels may reorder sums); killed after step 2 and resumed: the same losses."""
    tokens = write_synthetic_tokens(root / "tokens", SYNTHETIC_PRESETS["smoke"])
    base = dataclasses.replace(train_config("smoke"), steps=4, batch_size=4, window_tokens=64, log_every=1,
                               eval_every=0, checkpoint_every=2, warmup_steps=1, precision="fp32")
    fsdp = dataclasses.replace(base, parallel="fsdp", activation_checkpointing=True)
    smoke = model_config("smoke")
    plain = train(root / "plain", smoke, base, tokens, device=device, progress=False)
    sharded = train(root / "fsdp", smoke, fsdp, tokens, device=device, progress=False)
    assert plain["device"].startswith(device) and sharded["device"].startswith(device)
    losses = lambda run: [m["loss"] for m in read_metrics(run) if "loss" in m]  # noqa: E731
    a, b = losses(root / "plain"), losses(root / "fsdp")
    assert len(a) == len(b) == 4 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-4, (a, b)
    assert (latest_checkpoint(root / "fsdp") / "sharded" / ".metadata").is_file()
    split = root / "split"
    shutil.copytree(root / "fsdp" / "checkpoints" / "step-0000002", split / "checkpoints" / "step-0000002")
    (split / "checkpoint.json").write_text(json.dumps({"step": 2, "path": "checkpoints/step-0000002"}))
    shutil.copy(root / "fsdp" / "metrics.jsonl", split / "metrics.jsonl")
    train(split, smoke, fsdp, tokens, device=device, resume=True, progress=False)
    c = losses(split)
    assert len(c) == 4 and max(abs(x - y) for x, y in zip(b, c)) <= 1e-5, (b, c)


def check_bf16_fsdp_training(device: str, root) -> None:
    """FSDP in bf16 autocast (what a GPU run uses by default): it trains, the loss stays finite and falls."""
    tokens = write_synthetic_tokens(root / "tokens", SYNTHETIC_PRESETS["smoke"])
    cfg = dataclasses.replace(train_config("smoke"), steps=12, batch_size=4, window_tokens=64, log_every=1,
                              eval_every=0, checkpoint_every=0, warmup_steps=2, precision="bf16",
                              parallel="fsdp", activation_checkpointing=True)
    summary = train(root / "bf16", model_config("smoke"), cfg, tokens, device=device, progress=False)
    losses = [m["loss"] for m in read_metrics(root / "bf16") if "loss" in m]
    assert summary["steps"] == 12 and all(x == x and abs(x) < 20 for x in losses)
    assert summary["eval_loss"] < summary["initial_eval_loss"]


@pytest.mark.gpu
@cuda
def test_bf16_autocast_forward_on_cuda():
    check_bf16_forward("cuda")


@pytest.mark.gpu
@cuda
def test_decoding_on_cuda():
    check_decoding("cuda")


@pytest.mark.gpu
@cuda
def test_fsdp_steps_on_one_gpu(tmp_path):
    check_fsdp_steps("cuda", tmp_path)


@pytest.mark.gpu
@cuda
def test_bf16_fsdp_training_on_one_gpu(tmp_path):
    check_bf16_fsdp_training("cuda", tmp_path)


def test_cpu_decoding(one_torch_thread):
    check_decoding("cpu")


def test_cpu_fsdp_steps(tmp_path, one_torch_thread):
    check_fsdp_steps("cpu", tmp_path)


def test_cpu_bf16_autocast_forward(one_torch_thread):
    check_bf16_forward("cpu")


def test_cpu_bf16_fsdp_training(tmp_path, one_torch_thread):
    check_bf16_fsdp_training("cpu", tmp_path)
