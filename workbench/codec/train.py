"""Codec training, as a `Task` trained by `workbench.core.train` (budgets, schedule, resume, metrics, checkpoints):
random crops (`data.py`) -> codec with quantizer dropout -> multi-scale mel + waveform L1 + commitment, or for
the griffinlim decoder its log magnitudes (no waveform in training); optionally against a discriminator with
feature matching (multi-scale STFT on the waveform; on the log magnitudes for the griffinlim decoder), which joins
once the loop's progress reaches `adversarial_start` and takes its own step (its own AdamW, the same schedule)
after each of the codec's.

Run folder (default runs/codec/<preset>): metrics.jsonl, summary.json, checkpoint.json + checkpoints/
(codec.safetensors, [discriminator.safetensors], state.pt, config.json with model_config and train_config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from workbench.codec.config import ModelConfig, TrainConfig
from workbench.codec.data import corpus_speech_level_db, open_training_data, sample_batch
from workbench.codec.discriminator import LogMagnitudeDiscriminator, MultiScaleSTFTDiscriminator
from workbench.codec.losses import (
    MultiScaleMelLoss,
    bin_weights,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    magnitude_loss,
)
from workbench.codec.model import Codec, count_parameters, frame_spectrum
from workbench.core.checkpoint import latest_checkpoint, load_config, load_weights
from workbench.core.config import override
from workbench.core.device import DistInfo, init_distributed
from workbench.core.errors import UserError
from workbench.core.paths import BUILD, codec_dir
from workbench.core.train import (
    EVAL_SEED,
    Run,
    Task,
    check_fresh_or_resumable,
    fit,
    make_optimizer,
    micro_slices,
    write_summary,
)

HINT = "train one first: python -m workbench codec train"


def check_moved(run_dir: str | Path) -> None:
    """Codec runs lived in data/build/codec/<preset> before runs/codec/<preset>: a UserError saying to move an
    old run rather than training (or failing to load) in its new place."""
    path = Path(run_dir)
    if (path / "checkpoint.json").exists():
        return
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return
    old = BUILD / "codec" / rel.name
    if rel == codec_dir(rel.name) and (old / "checkpoint.json").is_file():
        raise UserError(f"{rel} holds no codec run but its old place {old} does; move it: "
                        f"mkdir -p {rel.parent} && mv {old} {rel}")


def load_codec(run_dir: str | Path, device: str | torch.device = "cpu",
               postfilter: tuple[float, float] | None = None, gla_iters: int | None = None,
               rvq_beam: int | None = None) -> tuple[Codec, dict]:
    """The latest checkpoint's codec (eval mode) and its config.json contents; `postfilter` (time, frequency)
    replaces the decoding postfilter the run recorded (`model.postfilter`; 1, 1 turns it off), `gla_iters` its
    Griffin-Lim iterations (the weights do not depend on either)."""
    check_moved(run_dir)
    path = latest_checkpoint(run_dir, HINT)
    meta = load_config(path)
    config = ModelConfig.from_dict(meta["model_config"])
    if postfilter is not None:
        config = override(config, postfilter_time=postfilter[0], postfilter_freq=postfilter[1])
    if gla_iters is not None:
        config = override(config, gla_iters=gla_iters)
    if rvq_beam is not None:
        config = override(config, rvq_beam=rvq_beam)
    config.check()
    codec = load_weights(path, "codec", Codec(config))
    return codec.to(device).eval(), meta


class CodecTask(Task):
    """What the loop trains: the codec (`model`), and the discriminator's step after each of the codec's."""

    def __init__(self, model_config: ModelConfig, cfg: TrainConfig, corpus_dir: str | Path, device: torch.device):
        model_config.check()
        self.magnitudes = model_config.decoder == "griffinlim"  # the decoder learns its magnitudes directly
        self.cfg, self.device, self.info = cfg, device, DistInfo()
        self.train_data, held_data = open_training_data(corpus_dir)
        if cfg.level_from_corpus:  # every input will be coded at the level the codec learns here
            model_config = override(model_config, input_level_db=corpus_speech_level_db(self.train_data, cfg.seed))
        torch.manual_seed(cfg.seed)
        self.model = self.codec = Codec(model_config).to(device)
        self.disc = None
        if cfg.adversarial:
            self.disc = (LogMagnitudeDiscriminator(cfg.disc_channels, self.codec.decoder.n_fft, model_config.sample_rate)
                         if self.magnitudes else MultiScaleSTFTDiscriminator(cfg.disc_ffts, cfg.disc_channels))
            self.disc.to(device)
        self.disc_optimizer = make_optimizer(self.disc, cfg) if self.disc else None
        self.mel_loss = MultiScaleMelLoss(model_config.sample_rate).to(device)
        self.bin_weights = (bin_weights(2 * model_config.hop + 1, cfg.magnitude_tilt, model_config.sample_rate).to(device)
                            if self.magnitudes and cfg.magnitude_tilt else None)  # the spectrum of n_fft = 4 hops
        self.crop_level = model_config.input_level_db if cfg.level_crops else None
        self.eval_batch = sample_batch(held_data, cfg.crop_seconds, cfg.batch_size,
                                       np.random.default_rng([cfg.seed, EVAL_SEED]), self.codec.hop,
                                       level_db=self.crop_level).to(device)
        self.pending: list[tuple[list[torch.Tensor], torch.Tensor, float]] = []  # for the discriminator's step

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"codec": self.codec, **({"discriminator": self.disc} if self.disc else {})}

    def micro_batches(self, step: int, rng: np.random.Generator, info: DistInfo) -> list[Any]:
        cfg, self.info = self.cfg, info
        wav = sample_batch(self.train_data, cfg.crop_seconds, cfg.batch_size, rng, self.codec.hop,
                           speed_perturb=cfg.speed_perturb, eq_perturb=cfg.eq_perturb, level_db=self.crop_level)
        q = self.codec.cfg.num_quantizers
        n_q = int(rng.integers(1, q + 1)) if rng.random() < cfg.quantizer_dropout else q
        adversarial = self.disc is not None and self.progress >= cfg.adversarial_start  # the loop's progress
        if self.disc is not None and info.world > 1:  # rank 0's clock decides for everyone
            flag = torch.tensor(float(adversarial), device=self.device)
            dist.broadcast(flag, 0)
            adversarial = bool(flag.item())
        return [(wav[rows].to(self.device), n_q, adversarial, (rows.stop - rows.start) / cfg.batch_size)
                for rows in micro_slices(cfg.batch_size, cfg.micro_batch, info)]

    def loss(self, model: torch.nn.Module, micro: Any) -> tuple[torch.Tensor, dict[str, float]]:
        wav, n_q, adversarial, share = micro
        cfg = self.cfg
        if self.magnitudes:
            fake, _, commit = model(wav, n_q, magnitudes=True)  # log magnitudes (B, bins, F)
            dec = self.codec.decoder
            target = frame_spectrum(wav[:, 0], dec.n_fft, dec.hop, dec.window).abs()
            mag = magnitude_loss(fake, target, self.bin_weights, cfg.envelope_weight)
            real = torch.log(target.clamp(min=1e-5))  # what the discriminator reads for real
            loss = mag + cfg.commit_weight * commit
            stats = {"magnitude": mag.item(), "commit": commit.item()}
        else:
            fake, _, commit = model(wav, n_q)
            mel = self.mel_loss(fake, wav)
            wave = (fake - wav).abs().mean()
            loss, real = cfg.mel_weight * mel + cfg.wave_weight * wave + cfg.commit_weight * commit, wav
            stats = {"mel": mel.item(), "wave": wave.item(), "commit": commit.item()}
        if adversarial:
            real_logits, real_feats = self.disc(real)  # kept for the discriminator's step
            fake_logits, fake_feats = self.disc(fake)
            adv, feat = generator_adversarial_loss(fake_logits), feature_matching_loss(real_feats, fake_feats)
            loss = loss + cfg.adv_weight * adv + cfg.feat_weight * feat
            stats.update(adv=adv.item(), feat=feat.item())
            self.pending.append((real_logits, fake.detach(), share))
        return loss * share, {**stats, "n_q": n_q}

    def after_step(self, step: int, lr_scale: float) -> dict[str, float]:
        out = {"code_restarts": sum(vq.restarts for vq in self.codec.quantizer.levels)}
        if not self.pending:
            return out
        for group in self.disc_optimizer.param_groups:
            group["lr"] = self.cfg.lr * lr_scale
        self.disc_optimizer.zero_grad(set_to_none=True)  # also drops what the codec's loss left there
        total = torch.zeros((), device=self.device)
        for real_logits, fake, share in self.pending:
            d_loss = discriminator_loss(real_logits, self.disc(fake)[0]) * share
            d_loss.backward()
            total += d_loss.detach()
        self.pending.clear()
        if self.info.world > 1:  # the shares of all processes add up to the global batch's loss
            for p in self.disc.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
            dist.all_reduce(total)
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), self.cfg.grad_clip)
        self.disc_optimizer.step()
        return {**out, "disc": total.item()}

    def evaluate(self) -> dict[str, float]:
        """Mel loss at the full rate on a fixed held-out batch (the codebooks are not touched in eval mode)."""
        return {"eval_mel": self.mel_loss(self.codec(self.eval_batch)[0], self.eval_batch).item()}

    def state_dict(self) -> dict[str, Any]:
        return {"code_restarts": [vq.restarts for vq in self.codec.quantizer.levels],
                **({"disc_optimizer": self.disc_optimizer.state_dict()} if self.disc else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for vq, n in zip(self.codec.quantizer.levels, state.get("code_restarts", ())):
            vq.restarts = int(n)
        if self.disc:
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])


def train(out_dir: str | Path, model_config: ModelConfig, train_config: TrainConfig, corpus_dir: str | Path, *,
          resume: bool = False, device: str | None = None, progress: bool | None = None,
          preset: str | None = None) -> dict:
    """Train (or with `resume` continue) a codec into `out_dir`; returns the summary (also summary.json).
    On resume the settings must match the checkpoint's except `steps` and `max_minutes`."""
    cfg, out_dir = train_config, Path(out_dir)
    info, device = init_distributed(device)
    check_fresh_or_resumable(out_dir, resume)
    check_moved(out_dir)
    task = CodecTask(model_config, cfg, corpus_dir, device)
    sizes = {"parameters": count_parameters(task.codec),
             "discriminator_parameters": count_parameters(task.disc) if task.disc else 0}
    run = Run(out_dir, identity={"model_config": task.codec.cfg.to_dict()},  # with the level it measured
              meta={"preset": preset, "corpus": str(corpus_dir), **sizes}, resume=resume, desc="codec",
              progress=progress, hint=HINT)
    summary = fit(task, cfg, run, device=device, info=info)
    if not summary or summary.get("already_finished"):
        return summary
    initial, final = summary["initial_eval"], summary["final_eval"]
    return write_summary(out_dir, {
        **summary, "out": str(out_dir), "preset": preset,
        "seconds_of_audio": summary["steps"] * cfg.batch_size * cfg.crop_seconds,
        "initial_eval_mel": initial and initial["eval_mel"], "final_eval_mel": final["eval_mel"], **sizes,
        "kbps": model_config.kbps()})
