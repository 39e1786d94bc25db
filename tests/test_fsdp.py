"""Scale-out on CPU (`workbench.core.distributed`): FSDP2 over 2 gloo processes under torchrun trains what one
process trains, resumes exactly from its sharded (DCP) checkpoints -- under 2 processes and resharded onto 1 --,
and a sharded checkpoint gathers into one model.safetensors that `load_model` reads in one process and that
gives the same logits. Plus: activation checkpointing really recomputes and changes no number; runs written
before the scale-out settings existed still resume and are still reused."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from workbench.core.checkpoint import latest_checkpoint
from workbench.core.device import DistInfo
from workbench.core.distributed import gather_checkpoint, read_sharded_weights
from workbench.core.errors import UserError
from workbench.lm.config import train_config
from workbench.lm.data import SYNTHETIC_PRESETS, TokenCorpus, write_synthetic_tokens
from workbench.lm.model import load_model, model_config
from workbench.lm.train import LMTask, read_metrics, train, train_or_reuse

ROOT = Path(__file__).resolve().parent.parent
SMOKE = model_config("smoke")
FSDP = dataclasses.replace(train_config("smoke"), steps=6, batch_size=4, window_tokens=32, log_every=1,
                           eval_every=3, checkpoint_every=3, warmup_steps=2, precision="fp32", parallel="fsdp")
ONE = dataclasses.replace(FSDP, parallel="ddp", micro_batch=2)  # one process, the same two 2-row halves

WORKER = """
import json, sys
from workbench.core.device import finish_distributed
from workbench.lm.config import TrainConfig
from workbench.lm.model import model_config
from workbench.lm.train import train
out, tokens, cfg, mode = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
try:
    train(out, model_config("smoke"), TrainConfig.from_dict(cfg), tokens, resume=mode == "resume", progress=False)
except BaseException:
    finish_distributed(synchronize=False)
    raise
finish_distributed()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(worker: Path, out: Path, tokens: Path, cfg, resume: bool = False) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(free_port()), str(worker), str(out), str(tokens),
                           json.dumps(cfg.to_dict()), "resume" if resume else "fresh"],
                          env=env, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def losses(run: Path) -> list[float]:
    return [m["loss"] for m in read_metrics(run) if "loss" in m]


def eval_losses(run: Path) -> list[float]:
    return [m["eval_loss"] for m in read_metrics(run) if "eval_loss" in m]


def copy_checkpoint(src: Path, dst: Path, step: int) -> None:
    """dst: the run `src` as it was when it was killed right after its step-`step` checkpoint."""
    name = f"step-{step:07d}"
    shutil.copytree(src / "checkpoints" / name, dst / "checkpoints" / name)
    (dst / "checkpoint.json").write_text(json.dumps({"step": step, "path": f"checkpoints/{name}"}))
    shutil.copy(src / "metrics.jsonl", dst / "metrics.jsonl")  # resume cuts it back to `step`


def max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_torch_thread):
    """A 2-process FSDP run (checkpoints at 3 and 6), the same run resumed from step 3 under 2 processes, and
    one process training the same global batch without sharding."""
    root = tmp_path_factory.mktemp("fsdp")
    tokens = write_synthetic_tokens(root / "tokens", SYNTHETIC_PRESETS["smoke"])
    worker = root / "worker.py"
    worker.write_text(WORKER)
    torchrun(worker, root / "fsdp", tokens, FSDP)
    copy_checkpoint(root / "fsdp", root / "resumed", 3)
    torchrun(worker, root / "resumed", tokens, FSDP, resume=True)
    train(root / "one", SMOKE, ONE, tokens, progress=False)
    return {"root": root, "tokens": tokens, "fsdp": root / "fsdp", "resumed": root / "resumed", "one": root / "one"}


def test_fsdp_two_processes_match_one(runs):
    """Tolerance 1e-5 (as for DDP): only the order of the float32 gradient sums differs."""
    a, b = losses(runs["fsdp"]), losses(runs["one"])
    assert len(a) == len(b) == 6 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, (a, b)
    ea, eb = eval_losses(runs["fsdp"]), eval_losses(runs["one"])
    assert len(ea) == len(eb) == 3 and max(abs(x - y) for x, y in zip(ea, eb)) <= 1e-5, (ea, eb)
    summary = json.loads((runs["fsdp"] / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 6
    step3 = runs["fsdp"] / "checkpoints" / "step-0000003"
    assert {p.name for p in step3.iterdir()} == {"sharded", "state.pt", "config.json"}  # shards only, mid-run
    assert sorted(p.name for p in (step3 / "sharded").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    final = latest_checkpoint(runs["fsdp"])
    assert {p.name for p in final.iterdir()} == {"sharded", "state.pt", "config.json", "model.safetensors"}
    assert json.loads((final / "config.json").read_text())["train_config"]["parallel"] == "fsdp"
    wa = load_file(final / "model.safetensors")
    wb = load_file(latest_checkpoint(runs["one"]) / "model.safetensors")
    assert max_diff(wa, wb) <= 1e-5


def test_resume_from_a_sharded_checkpoint_is_exact(runs):
    """Killed after the step-3 checkpoint, resumed under 2 processes: the same losses and weights as the
    uninterrupted run (the same reductions in the same order: equal to 1e-6)."""
    a, b = losses(runs["fsdp"]), losses(runs["resumed"])
    assert len(a) == len(b) == 6 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-6, (a, b)
    summary = json.loads((runs["resumed"] / "summary.json").read_text())
    assert summary["resumed_from"] == 3 and summary["steps"] == 6
    wa = load_file(latest_checkpoint(runs["fsdp"]) / "model.safetensors")
    wb = load_file(latest_checkpoint(runs["resumed"]) / "model.safetensors")
    assert max_diff(wa, wb) <= 1e-6


def test_a_two_process_checkpoint_resumes_in_one_process(runs, tmp_path, one_torch_thread):
    """DCP reshards: the 2-process step-3 shards load into one process (a world of 1) and it trains on as the
    2-process run did (1e-5: the gradient sums are ordered differently)."""
    copy_checkpoint(runs["fsdp"], tmp_path / "run", 3)
    summary = train(tmp_path / "run", SMOKE, FSDP, runs["tokens"], resume=True, progress=False)
    assert summary["resumed_from"] == 3 and summary["processes"] == 1
    a, b = losses(runs["fsdp"]), losses(tmp_path / "run")
    assert a[:3] == b[:3] and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, (a, b)
    assert not torch.distributed.is_initialized()  # the one-process group is gone again


def fixed_tokens(vocab: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(5).integers(0, vocab, size=(2, 40)))


def test_gathered_checkpoint_loads_in_one_process_with_the_same_logits(runs, tmp_path, one_torch_thread):
    # the CLI, on the mid-run step-3 checkpoint (shards only)
    step3 = runs["fsdp"] / "checkpoints" / "step-0000003"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "workbench.core.distributed", "gather", str(runs["fsdp"]),
                           str(tmp_path / "g3"), "--checkpoint", str(step3)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["gathered"].endswith("step-0000003")
    model3, meta3 = load_model(tmp_path / "g3")
    assert meta3["step"] == 3 and meta3["train_config"]["parallel"] == "fsdp"
    one3, _ = load_model(runs["one"])  # ... 'one' at step 6; its step-3 weights:
    one3.load_state_dict(load_file(runs["one"] / "checkpoints" / "step-0000003" / "model.safetensors"))
    tokens = fixed_tokens(SMOKE.vocab_size)
    with torch.no_grad():
        la, lb = model3(tokens)[0], one3(tokens)[0]
    assert la.shape == (2, 40, SMOKE.vocab_size) and (la - lb).abs().max().item() <= 1e-4

    # the function, on the final checkpoint: the same tensors the run's own full-state gather wrote
    gather_checkpoint(runs["fsdp"], tmp_path / "g6")
    final = latest_checkpoint(runs["fsdp"])
    gathered = load_file(latest_checkpoint(tmp_path / "g6") / "model.safetensors")
    assert max_diff(gathered, load_file(final / "model.safetensors")) == 0.0
    assert max_diff(gathered, read_sharded_weights(final)) == 0.0
    model6, _ = load_model(tmp_path / "g6")
    one6, _ = load_model(runs["one"])
    with torch.no_grad():
        assert (model6(tokens)[0] - one6(tokens)[0]).abs().max().item() <= 1e-4
        # the held-out NLL of the gathered model in one process == what the sharded model computed in two
        task = LMTask(model6, FSDP, TokenCorpus(runs["tokens"]), DistInfo(), torch.device("cpu"))
        nll = task.evaluate()["eval_loss"]
    assert abs(nll - eval_losses(runs["fsdp"])[-1]) <= 1e-5


def test_gather_refuses_an_unsharded_checkpoint(runs, tmp_path):
    with pytest.raises(UserError, match="no sharded checkpoint"):
        gather_checkpoint(runs["one"], tmp_path / "out")


def test_switching_ddp_and_fsdp_on_resume_is_refused(runs, tmp_path):
    copy_checkpoint(runs["one"], tmp_path / "run", 3)
    with pytest.raises(UserError, match="different settings.*parallel"):
        train(tmp_path / "run", SMOKE, dataclasses.replace(ONE, parallel="fsdp"), runs["tokens"], resume=True,
              progress=False)


def test_activation_checkpointing_recomputes_and_changes_nothing(runs, tmp_path, one_torch_thread):
    """Each residual block's temporal block runs twice per training forward (forward + recompute in the
    backward pass) and once per evaluation forward; the losses are the same as without it."""
    calls = []

    def count(module, args, output):
        calls.append(torch.is_grad_enabled())

    base = dataclasses.replace(ONE, steps=3, micro_batch=None, eval_every=0, checkpoint_every=0)
    for name, ac in (("plain", False), ("ac", True)):
        from workbench.lm import train as lm_train

        built = lm_train.build_model

        def build_counted(config, *a, **k):
            model = built(config, *a, **k)
            for block in model.blocks:
                block.temporal_block.register_forward_hook(count)
            return model

        calls.clear()
        lm_train.build_model = build_counted
        try:
            train(tmp_path / name, SMOKE, dataclasses.replace(base, activation_checkpointing=ac), runs["tokens"],
                  progress=False)
        finally:
            lm_train.build_model = built
        training_calls = sum(calls)  # in grad mode; the initial and final evaluations run without
        assert len(calls) - training_calls == 2 * SMOKE.num_layers
        assert training_calls == (2 if ac else 1) * 3 * SMOKE.num_layers, (name, calls)
    assert losses(tmp_path / "ac") == pytest.approx(losses(tmp_path / "plain"), abs=1e-6)


def test_runs_from_before_the_scale_out_settings_resume_and_are_reused(runs, tmp_path, one_torch_thread):
    """A checkpoint whose train_config lacks parallel / activation_checkpointing / compile was trained with
    their defaults: it resumes, and train_or_reuse reuses a finished one."""
    cfg = dataclasses.replace(ONE, steps=2, eval_every=0, checkpoint_every=0)
    train(tmp_path / "run", SMOKE, cfg, runs["tokens"], progress=False)
    path = latest_checkpoint(tmp_path / "run")
    config = json.loads((path / "config.json").read_text())
    for key in ("parallel", "activation_checkpointing", "compile"):
        del config["train_config"][key]
    (path / "config.json").write_text(json.dumps(config))
    again = train_or_reuse(tmp_path / "run", SMOKE, cfg, runs["tokens"], progress=False)
    assert again.get("reused") is True
    summary = train(tmp_path / "run", SMOKE, dataclasses.replace(cfg, steps=3), runs["tokens"], resume=True,
                    progress=False)
    assert summary["resumed_from"] == 2 and summary["steps"] == 3
    with pytest.raises(UserError, match="parallel"):  # ... and as what they were: ddp, not fsdp
        train(tmp_path / "run", SMOKE, dataclasses.replace(cfg, steps=4, parallel="fsdp"), runs["tokens"],
              resume=True, progress=False)


def test_lm_train_flags_choose_the_engine(runs, tmp_path, capsys, one_torch_thread):
    """`lm train --parallel fsdp --activation-checkpointing` (one process: a one-process group) writes a sharded
    run with those settings; the paper preset trains sharded with checkpointing unless told otherwise."""
    from workbench import cli

    assert cli.main(["lm", "train", "--preset", "smoke", "--tokens", str(runs["tokens"]), "--steps", "2",
                     "--window", "32", "--parallel", "fsdp", "--activation-checkpointing", "--out",
                     str(tmp_path / "run"), "--json"]) == 0
    capsys.readouterr()
    final = latest_checkpoint(tmp_path / "run")
    saved = json.loads((final / "config.json").read_text())["train_config"]
    assert saved["parallel"] == "fsdp" and saved["activation_checkpointing"] is True and saved["compile"] is False
    assert (final / "sharded" / ".metadata").is_file() and (final / "model.safetensors").is_file()
    paper = train_config("paper")
    assert paper.parallel == "fsdp" and paper.activation_checkpointing and not paper.compile
    assert train_config("smoke").parallel == "ddp"
    with pytest.raises(ValueError, match="parallel must be one of"):
        dataclasses.replace(FSDP, parallel="zero3")


@pytest.mark.slow
def test_compile_changes_no_number(runs, tmp_path, one_torch_thread):
    """`compile` (torch.compile of each block's forward; ~1 minute of compiling on 2 CPU cores) trains what the
    eager model trains, alone and with fsdp + activation checkpointing. The RG-LRU extension is not a
    registered custom op, so dynamo breaks the graph around it: the blocks compile in pieces."""
    from workbench.core.distributed import prepare_blocks
    from workbench.lm.model import build_model

    model = build_model(SMOKE)
    names = list(model.state_dict())
    prepare_blocks(model.blocks, activation_checkpointing=True, compile=True)
    assert all(hasattr(block.forward, "_torchdynamo_orig_callable") for block in model.blocks)  # compiled
    assert list(model.state_dict()) == names  # no wrapper prefixes: checkpoints load whatever the options
    base = dataclasses.replace(ONE, steps=3, micro_batch=None, eval_every=0, checkpoint_every=0)
    train(tmp_path / "eager", SMOKE, base, runs["tokens"], progress=False)
    for name, cfg in (("compiled", dataclasses.replace(base, compile=True)),
                      ("all", dataclasses.replace(base, compile=True, parallel="fsdp", activation_checkpointing=True))):
        train(tmp_path / name, SMOKE, cfg, runs["tokens"], progress=False)
        assert losses(tmp_path / name) == pytest.approx(losses(tmp_path / "eager"), abs=1e-5), name
