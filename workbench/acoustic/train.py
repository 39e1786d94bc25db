"""SoundStorm training: cached (semantic tokens, codec codes) pairs -> random crops -> the SoundStorm mask
(masking.py) -> cross-entropy on the masked tokens of the chosen level; AdamW, warmup + cosine decay over
progress = max(step / steps, elapsed / max_minutes), gradient clipping, JSONL metrics, atomic checkpoints
(`workbench.checkpoint`), exact resume. Crops and masks of step s come from RNGs seeded by (seed, s), so a
resumed run sees the same batches.

The checkpoint records which codec and tokenizer made its training data (their fingerprints): a model trained
on one codec's codes is refused with another codec (`check_compatible`).

Run folder: metrics.jsonl, summary.json, checkpoint.json + checkpoints/ (model.safetensors, state.pt,
config.json).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench.acoustic.config import AcousticModelConfig, AcousticPreset, TrainConfig
from workbench.acoustic.data import Batch, Pair, Rates, build_pairs, load_pairs, sample_batch
from workbench.acoustic.masking import training_mask
from workbench.acoustic.model import SoundStorm, count_parameters
from workbench.checkpoint import (TrainingSteps, append_metrics, changed_settings, latest_checkpoint, load_config,
                                  load_state, load_weights, save_checkpoint, truncate_metrics)
from workbench.cli import UserError
from workbench.codec.train import lr_factor, pick_device
from workbench.io import atomic_write_json

EVAL_SEED = 1_000_003
HINT = "train one first: python -m workbench acoustic train"


def default_paths(preset: str) -> dict[str, Path]:
    return {"corpus": Path(f"data/build/{preset}"), "codec": Path(f"data/build/codec/{preset}"),
            "tokenizer": Path(f"runs/tokenizer/{preset}/learned"), "pairs": Path(f"data/build/acoustic/{preset}"),
            "run": Path(f"runs/acoustic/{preset}")}


def load_codec_and_tokenizer(codec_dir: str | Path, tokenizer_dir: str | Path, device: torch.device | str = "cpu"):
    from workbench.codec.train import load_codec
    from workbench.tokenizer.tokenizer import Tokenizer, TokenizerError

    codec, _ = load_codec(codec_dir, device)
    try:
        tokenizer = Tokenizer.load(tokenizer_dir)
    except TokenizerError as err:
        raise UserError(str(err)) from None
    return codec, tokenizer


def masked_loss(model: SoundStorm, batch: Batch, generator: torch.Generator, level: int | None = None,
                ratio: float | None = None) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy over the masked tokens of each item's level, and its accuracy."""
    m = training_mask(batch.codes, model.mask_id, generator, batch.min_prompt, level, ratio)
    logits = model.logits(model(batch.semantic, m.inputs), m.level)  # (b, t, k) of each item's level
    targets = batch.codes.gather(1, m.level[:, None, None].expand(-1, 1, batch.codes.shape[2]))[:, 0]
    loss = F.cross_entropy(logits[m.loss_mask], targets[m.loss_mask])
    accuracy = (logits[m.loss_mask].argmax(-1) == targets[m.loss_mask]).float().mean()
    return loss, {"accuracy": accuracy.item(), "masked": int(m.loss_mask.sum()), "level_mean": m.level.float().mean().item()}


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)


def check_compatible(meta: dict, codec, tokenizer=None, where: str = "") -> None:
    """A UserError unless `codec` (and `tokenizer`) are the ones the acoustic model was trained with."""
    from workbench.acoustic.data import codec_fingerprint
    from workbench.tokenizer.tokenizer import fingerprint

    data = meta["data"]
    have = (codec.cfg.num_quantizers, codec.cfg.codebook_size, codec.hop)
    want = (data["levels"], data["codebook_size"], data["rates"]["codec_hop"])
    if have[0] < meta["model_config"]["num_levels"] or have[1:] != want[1:]:
        raise UserError(f"codec mismatch{where}: the acoustic model needs {meta['model_config']['num_levels']} levels x "
                        f"{want[1]} codes at hop {want[2]}; this codec has {have[0]} x {have[1]} at hop {have[2]}")
    if codec_fingerprint(codec) != data["codec_fingerprint"]:
        raise UserError(f"codec mismatch{where}: the acoustic model was trained on the codes of another codec "
                        f"(fingerprint {data['codec_fingerprint']}, this one {codec_fingerprint(codec)}); "
                        "use that codec or retrain the acoustic model")
    if tokenizer is not None and fingerprint(tokenizer) != data["tokenizer_fingerprint"]:
        raise UserError(f"tokenizer mismatch{where}: the acoustic model was trained on the units of another tokenizer "
                        f"(fingerprint {data['tokenizer_fingerprint']}, this one {fingerprint(tokenizer)})")


def load_acoustic(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SoundStorm, dict]:
    """The latest checkpoint's model (eval mode) and its config.json contents."""
    path = latest_checkpoint(run_dir, HINT)
    meta = load_config(path)
    model = load_weights(path, "model", SoundStorm(AcousticModelConfig.from_dict(meta["model_config"])))
    return model.to(device).eval(), meta


def rates_of_meta(meta: dict) -> Rates:
    return Rates(**meta["data"]["rates"])


def train(out_dir: str | Path, preset: AcousticPreset, corpus_dir: str | Path, codec_dir: str | Path,
          tokenizer_dir: str | Path, pairs_dir: str | Path, *, resume: bool = False, device: str | None = None,
          progress: bool | None = None, preset_name: str | None = None) -> dict:
    """Train (or with `resume` continue) SoundStorm into `out_dir`; returns the summary (also summary.json).
    On resume every setting must match the checkpoint's except `steps` and `max_minutes`."""
    cfg, out_dir, device = preset.train, Path(out_dir), pick_device(device)
    torch.set_num_threads(cfg.threads)
    codec, tokenizer = load_codec_and_tokenizer(codec_dir, tokenizer_dir, device)
    if not Path(corpus_dir).is_dir():
        raise UserError(f"no corpus at {corpus_dir}; build it (python -m workbench data build) or pass --corpus")
    try:
        pairs_meta = build_pairs(tokenizer, codec, corpus_dir, pairs_dir, progress=bool(progress))
    except (ValueError, FileNotFoundError) as err:
        raise UserError(f"cannot build the training pairs: {err}") from None
    del codec, tokenizer
    model_config = preset.model.for_data(pairs_meta["levels"], pairs_meta["codebook_size"], pairs_meta["semantic_vocab"])
    rates = Rates(**pairs_meta["rates"])
    levels = model_config.num_levels
    train_pairs = load_pairs(pairs_dir, "train")
    held_pairs = load_pairs(pairs_dir, "dev") or train_pairs
    crop = rates.seconds_to_frames(cfg.crop_seconds)
    prompt = rates.seconds_to_frames(preset.decode.prompt_seconds)

    torch.manual_seed(cfg.seed)
    model = SoundStorm(model_config).to(device)
    opt = make_optimizer(model, cfg)
    data_keys = ("tokenizer_fingerprint", "codec_fingerprint", "levels", "codebook_size", "semantic_vocab", "rates")
    meta = {"preset": preset_name, "corpus": str(corpus_dir), "codec": str(codec_dir), "tokenizer": str(tokenizer_dir),
            "pairs": str(pairs_dir), "data": {k: pairs_meta[k] for k in data_keys},
            "model_config": model_config.to_dict(), "train_config": cfg.to_dict(),
            "decode_config": dataclasses.asdict(preset.decode), "parameters": count_parameters(model)}

    start_step, elapsed_before = 0, 0.0
    if resume:
        ckpt = latest_checkpoint(out_dir, HINT)
        saved = load_config(ckpt)
        diff = changed_settings(cfg.to_dict(), TrainConfig.from_dict(saved["train_config"]).to_dict())
        if saved["model_config"] != model_config.to_dict() or diff:
            raise UserError(f"cannot resume {out_dir}: its checkpoint was trained with different settings "
                            f"({', '.join(diff) or 'model config'})")
        if saved["data"] != meta["data"]:
            raise UserError(f"cannot resume {out_dir}: it was trained on pairs from another codec or tokenizer")
        load_weights(ckpt, "model", model)
        state = load_state(ckpt, device)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_step, elapsed_before = state["step"], state["elapsed_s"]
    elif (out_dir / "checkpoint.json").exists():
        raise UserError(f"{out_dir} already holds an acoustic run; pass --resume to continue it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.jsonl"
    truncate_metrics(metrics_path, start_step)  # drop what was logged after the checkpoint we resume from

    def draw(pairs: list[Pair], seed: list[int]) -> Batch:
        try:
            batch = sample_batch(pairs, rates, cfg.batch_size, crop, prompt, cfg.prompt_elsewhere, levels,
                                 np.random.default_rng(seed))
        except ValueError as err:
            raise UserError(f"cannot draw training crops: {err}") from None
        return Batch(batch.semantic.to(device), batch.codes.to(device), batch.min_prompt.to(device))

    eval_batches = [draw(held_pairs, [cfg.seed, EVAL_SEED, j]) for j in range(cfg.eval_batches)]

    def evaluate() -> dict:
        """Masked-token loss and accuracy on fixed held-out crops with fixed masks."""
        model.eval()
        with torch.no_grad():
            results = [masked_loss(model, b, torch.Generator(device).manual_seed(EVAL_SEED + j))
                       for j, b in enumerate(eval_batches)]
        model.train()
        return {"eval_loss": float(np.mean([l.item() for l, _ in results])),
                "eval_accuracy": float(np.mean([r["accuracy"] for _, r in results]))}

    run = TrainingSteps(cfg.steps, cfg.max_minutes, start_step, elapsed_before, "soundstorm", progress)
    elapsed = run.elapsed

    def checkpoint(step: int) -> None:
        state = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "elapsed_s": elapsed()}
        save_checkpoint(out_dir, step, {"model": model}, state, meta)

    initial = evaluate() if start_step == 0 else None
    if initial:
        append_metrics(metrics_path, {"step": 0, **initial, "elapsed_s": 0.0})
    model.train()
    record = {}
    for step, p in run:
        batch = draw(train_pairs, [cfg.seed, step])
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(cfg, step, p)
        loss, info = masked_loss(model, batch, torch.Generator(device).manual_seed(cfg.seed * 7919 + step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done = step + 1
        record = {"loss": loss.item(), **info}
        run.bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}")
        if done % cfg.log_every == 0 or done == cfg.steps or done == start_step + 1:
            append_metrics(metrics_path, {"step": done, **record, "lr": opt.param_groups[0]["lr"],
                                          "grad_norm": float(grad_norm), "progress": round(p, 4),
                                          "elapsed_s": round(elapsed(), 2)})
        if done % cfg.eval_every == 0:
            append_metrics(metrics_path, {"step": done, **evaluate(), "elapsed_s": round(elapsed(), 2)})
        if done % cfg.checkpoint_every == 0:
            checkpoint(done)
    step, stopped_by = run.done, run.stopped_by

    checkpoint(step)
    final = evaluate()
    append_metrics(metrics_path, {"step": step, **final, "elapsed_s": round(elapsed(), 2)})
    summary = {"out": str(out_dir), "preset": preset_name, "device": str(device), "steps": step,
               "stopped_by": stopped_by, "elapsed_s": round(elapsed(), 1), "threads": torch.get_num_threads(),
               "seconds_of_audio": round(step * cfg.batch_size * (crop + prompt) / rates.codec_rate, 1),
               "initial_eval_loss": initial and initial["eval_loss"], "final_eval_loss": final["eval_loss"],
               "initial_eval_accuracy": initial and initial["eval_accuracy"],
               "final_eval_accuracy": final["eval_accuracy"], "last": record, "parameters": meta["parameters"],
               "levels": levels, "codebook_size": model_config.codebook_size,
               "train_hours": pairs_meta["hours"]}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary

