"""Codec training: random crops -> codec (with quantizer dropout) -> multi-scale mel + waveform L1 + commitment,
optionally against a multi-scale STFT discriminator with feature matching; Adam, warmup + cosine decay,
gradient clipping, JSONL metrics, atomic checkpoints (`workbench.checkpoint`), resume, a wall-clock budget.

The schedule runs on progress = max(step / steps, elapsed / max_minutes), so a run cut short by its time
budget still anneals its learning rate and still reaches the adversarial phase. Each step's crops and
quantizer-dropout level are drawn from an RNG seeded by (seed, step): a resumed run sees the same data.

Run folder: metrics.jsonl, summary.json, checkpoint.json + checkpoints/ (codec.safetensors,
[discriminator.safetensors], state.pt, config.json).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from workbench.audio import SAMPLE_RATE
from workbench.checkpoint import (TrainingSteps, append_metrics, changed_settings, latest_checkpoint, load_config,
                                  load_state, load_weights, save_checkpoint, truncate_metrics)
from workbench.cli import UserError
from workbench.codec.config import ModelConfig, TrainConfig
from workbench.codec.discriminator import MultiScaleSTFTDiscriminator
from workbench.codec.losses import (MultiScaleMelLoss, discriminator_loss, feature_matching_loss,
                                    generator_adversarial_loss)
from workbench.codec.model import Codec, count_parameters
from workbench.io import atomic_write_json

EVAL_SEED = 1_000_003
HINT = "train one first: python -m workbench codec train"


def pick_device(device: str | None = None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def lr_factor(cfg: TrainConfig, step: int, progress: float) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def sample_batch(dataset, cfg: TrainConfig, rng: np.random.Generator, hop: int, sample_rate: int = SAMPLE_RATE
                 ) -> torch.Tensor:
    """(B, 1, T) random crops, T = crop_seconds rounded down to whole frames."""
    n = int(cfg.crop_seconds * sample_rate) // hop * hop
    if n < hop:
        raise UserError(f"crop_seconds {cfg.crop_seconds} is shorter than one frame ({hop} samples)")
    try:
        crops = [dataset.random_crop(n / sample_rate, rng)[2][:n] for _ in range(cfg.batch_size)]
    except ValueError as err:
        raise UserError(f"cannot draw training crops: {err}") from None
    return torch.from_numpy(np.stack([np.pad(c, (0, n - len(c))) for c in crops]))[:, None]


def load_codec(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Codec, dict]:
    """The latest checkpoint's codec (eval mode) and its config.json contents."""
    path = latest_checkpoint(run_dir, HINT)
    meta = load_config(path)
    codec = load_weights(path, "codec", Codec(ModelConfig.from_dict(meta["model_config"])))
    return codec.to(device).eval(), meta


def open_training_data(corpus_dir: str | Path):
    from workbench.data.loaders import open_dataset

    try:
        full = open_dataset(corpus_dir)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot open the training corpus: {err}") from None
    train = full.split("train") if any(r.split == "train" for r in full.recordings) else full
    held = next((full.split(s) for s in ("dev", "test") if any(r.split == s for r in full.recordings)), train)
    return train, held


def train(out_dir: str | Path, model_config: ModelConfig, train_config: TrainConfig, corpus_dir: str | Path, *,
          resume: bool = False, device: str | None = None, progress: bool | None = None,
          preset: str | None = None) -> dict:
    """Train (or with `resume` continue) a codec into `out_dir`; returns the summary (also summary.json).
    On resume the configs must match the checkpoint's except `steps` and `max_minutes`."""
    cfg, out_dir, device = train_config, Path(out_dir), pick_device(device)
    model_config.check()
    train_data, held_data = open_training_data(corpus_dir)
    torch.manual_seed(cfg.seed)
    codec = Codec(model_config).to(device)
    disc = MultiScaleSTFTDiscriminator(cfg.disc_ffts, cfg.disc_channels).to(device) if cfg.adversarial else None
    opt = torch.optim.Adam(codec.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=cfg.betas) if disc else None
    mel_loss = MultiScaleMelLoss(model_config.sample_rate).to(device)
    meta = {"preset": preset, "corpus": str(corpus_dir), "model_config": model_config.to_dict(),
            "train_config": cfg.to_dict(), "parameters": count_parameters(codec),
            "discriminator_parameters": count_parameters(disc) if disc else 0}

    start_step, elapsed_before = 0, 0.0
    if resume:
        ckpt = latest_checkpoint(out_dir, HINT)
        saved = load_config(ckpt)
        diff = changed_settings(cfg.to_dict(), TrainConfig.from_dict(saved["train_config"]).to_dict())
        if ModelConfig.from_dict(saved["model_config"]) != model_config or diff:
            raise UserError(f"cannot resume {out_dir}: its checkpoint was trained with different settings "
                            f"({', '.join(diff) or 'model config'})")
        load_weights(ckpt, "codec", codec)
        state = load_state(ckpt, device)
        opt.load_state_dict(state["optimizer"])
        if disc:
            load_weights(ckpt, "discriminator", disc)
            opt_d.load_state_dict(state["disc_optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_step, elapsed_before = state["step"], state["elapsed_s"]
    elif (out_dir / "checkpoint.json").exists():
        raise UserError(f"{out_dir} already holds a codec run; pass --resume to continue it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.jsonl"
    truncate_metrics(metrics_path, start_step)  # drop what was logged after the checkpoint we resume from

    eval_batch = sample_batch(held_data, cfg, np.random.default_rng([cfg.seed, EVAL_SEED]), codec.hop).to(device)

    def evaluate() -> float:
        """Mel loss at the full rate on a fixed held-out batch (the codebooks are not touched in eval mode)."""
        codec.eval()
        with torch.no_grad():
            value = mel_loss(codec(eval_batch)[0], eval_batch).item()
        codec.train()
        return value

    run = TrainingSteps(cfg.steps, cfg.max_minutes, start_step, elapsed_before, "codec", progress)
    elapsed = run.elapsed

    def checkpoint(step: int) -> None:
        modules = {"codec": codec, **({"discriminator": disc} if disc else {})}
        state = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "elapsed_s": elapsed(),
                 **({"disc_optimizer": opt_d.state_dict()} if disc else {})}
        save_checkpoint(out_dir, step, modules, state, meta)

    initial_eval = evaluate() if start_step == 0 else None
    codec.train()
    record = {}
    for step, p in run:
        rng = np.random.default_rng([cfg.seed, step])
        wav = sample_batch(train_data, cfg, rng, codec.hop).to(device)
        q = model_config.num_quantizers
        n_q = int(rng.integers(1, q + 1)) if rng.random() < cfg.quantizer_dropout else q
        for group in opt.param_groups + (opt_d.param_groups if opt_d else []):
            group["lr"] = cfg.lr * lr_factor(cfg, step, p)

        fake, _, commit = codec(wav, n_q)
        mel = mel_loss(fake, wav)
        wave = (fake - wav).abs().mean()
        loss = cfg.mel_weight * mel + cfg.wave_weight * wave + cfg.commit_weight * commit
        record = {"mel": mel.item(), "wave": wave.item(), "commit": commit.item()}
        adversarial = disc is not None and p >= cfg.adversarial_start
        if adversarial:
            real_logits, real_feats = disc(wav)  # kept for the discriminator's step below
            fake_logits, fake_feats = disc(fake)
            adv, feat = generator_adversarial_loss(fake_logits), feature_matching_loss(real_feats, fake_feats)
            loss = loss + cfg.adv_weight * adv + cfg.feat_weight * feat
            record.update(adv=adv.item(), feat=feat.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(codec.parameters(), cfg.grad_clip)
        opt.step()
        if adversarial:
            d_loss = discriminator_loss(real_logits, disc(fake.detach())[0])
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), cfg.grad_clip)
            opt_d.step()
            record["disc"] = d_loss.item()

        done = step + 1
        run.bar.set_postfix(mel=f"{record['mel']:.3f}", n_q=n_q)
        if done % cfg.log_every == 0 or done == cfg.steps or done == start_step + 1:
            restarts = sum(vq.restarts for vq in codec.quantizer.levels)
            append_metrics(metrics_path, {"step": done, "loss": loss.item(), **record, "n_q": n_q,
                                          "lr": opt.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                                          "code_restarts": restarts, "progress": round(p, 4),
                                          "elapsed_s": round(elapsed(), 2)})
        if done % cfg.checkpoint_every == 0:
            checkpoint(done)
    step, stopped_by = run.done, run.stopped_by

    checkpoint(step)
    final_eval = evaluate()
    append_metrics(metrics_path, {"step": step, "eval_mel": final_eval, "elapsed_s": round(elapsed(), 2)})
    summary = {"out": str(out_dir), "preset": preset, "device": str(device), "steps": step, "stopped_by": stopped_by,
               "elapsed_s": round(elapsed(), 1), "seconds_of_audio": step * cfg.batch_size * cfg.crop_seconds,
               "initial_eval_mel": initial_eval, "final_eval_mel": final_eval, "last": record,
               "parameters": meta["parameters"], "discriminator_parameters": meta["discriminator_parameters"],
               "kbps": model_config.kbps()}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary

