"""SoundStorm training, as a `Task` trained by `workbench.core.train` (budgets, schedule, resume, metrics,
checkpoints): cached (semantic tokens, codec codes) pairs (`data.py`) -> random crops -> the SoundStorm mask
(`masking.py`) -> cross-entropy on the masked tokens of the chosen level. A step's masks come from a generator
seeded by (seed, step), drawn for the whole batch before it is split into micro-batches.

The checkpoint records which codec and tokenizer made its training data (their fingerprints, `data`): a run
resumes only on the same data, and a model trained on one codec's codes is refused with another codec
(`check_compatible`).

Run folder (default runs/acoustic/<preset>): metrics.jsonl, summary.json, checkpoint.json + checkpoints/
(model.safetensors, state.pt, config.json with model_config, train_config, decode_config and data).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from workbench.acoustic.config import AcousticModelConfig, AcousticPreset, DecodeConfig, TrainConfig
from workbench.acoustic.data import (
    Batch,
    Pair,
    Rates,
    build_cross_pairs,
    build_pairs,
    codec_fingerprint,
    latent_table,
    load_pairs,
    sample_batch,
    semantic_prior,
)
from workbench.acoustic.masking import TrainingMask, training_mask
from workbench.acoustic.model import SoundStorm, count_parameters
from workbench.codec.train import load_codec
from workbench.core import paths
from workbench.core.checkpoint import latest_checkpoint, load_config, load_weights
from workbench.core.device import DistInfo, init_distributed
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.core.train import EVAL_SEED, Run, Task, check_fresh_or_resumable, fit, micro_slices, write_summary
from workbench.tokenizer.model import Tokenizer, TokenizerError, fingerprint

HINT = "train one first: python -m workbench acoustic train"
DATA_KEYS = ("tokenizer_fingerprint", "codec_fingerprint", "levels", "codebook_size", "semantic_vocab", "rates")


def default_paths(preset: str) -> dict[str, Path]:
    return {"corpus": paths.corpus_dir(preset), "codec": paths.codec_dir(preset),
            "tokenizer": paths.tokenizer_dir(preset), "pairs": paths.pairs_dir(preset),
            "run": paths.acoustic_dir(preset)}


def load_codec_and_tokenizer(codec_dir: str | Path, tokenizer_dir: str | Path, device: torch.device | str = "cpu"):
    # SoundStorm's codes (training pairs, prompts, the codec ceiling in its eval) are the greedy RVQ's, as the
    # codec trained: the beam search codes 11 h of pairs ~10x slower, and its codes are not the ones measured here
    codec, _ = load_codec(codec_dir, device, rvq_beam=1)
    try:
        tokenizer = Tokenizer.load(tokenizer_dir)
    except TokenizerError as err:
        raise UserError(str(err)) from None
    return codec, tokenizer


def masked_loss(model: SoundStorm, batch: Batch, generator: torch.Generator, level: int | None = None,
                ratio: float | None = None, latent_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy over the masked tokens of each item's level (+ the latent head's weighted error), and
    its accuracy."""
    mask = training_mask(batch.codes, model.mask_id, generator, batch.min_prompt, level, ratio)
    return token_loss(model, batch, mask, mask.loss_mask.sum(), latent_weight)


def latent_target(codebooks: torch.Tensor, codes: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """What the latent head learns at a masked frame of level L: the codec latent levels L.. add up to, the
    residual a greedy RVQ still had to code after the coarser levels. codebooks (q, k, D), codes (b, q, t),
    level (b,) -> (b, t, D)."""
    q = codebooks.shape[0]
    vectors = codebooks[torch.arange(q, device=codes.device)[None, :, None], codes.long()]  # (b, q, t, D)
    wanted = torch.arange(q, device=codes.device)[None, :] >= level[:, None]  # (b, q)
    return (vectors * wanted[:, :, None, None].to(vectors.dtype)).sum(1)


def token_loss(model: torch.nn.Module, batch: Batch, mask: TrainingMask, denominator: torch.Tensor | int,
               latent_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Cross-entropy summed over the masked tokens of each item's level, divided by `denominator` (their count
    over the whole batch when `batch` is a micro-batch of it), and the accuracy on them. A model with a latent
    head adds `latent_weight` x its squared error on the same tokens, relative to the energy of a sum of codes
    (`latent_error`: that error over the tokens of this batch)."""
    core = getattr(model, "module", model)  # DDP wraps the model; the codebooks are read from the module
    with_latent = core.latent_head is not None
    out = model(batch.semantic, mask.inputs, level=mask.level, latent=with_latent)
    logits, estimate = out if with_latent else (out, None)  # (b, t, k) of each item's level, (b, t, D)
    targets = batch.codes.gather(1, mask.level[:, None, None].expand(-1, 1, batch.codes.shape[2]))[:, 0]
    picked, wanted = logits[mask.loss_mask], targets[mask.loss_mask]
    loss = F.cross_entropy(picked.float(), wanted, reduction="sum") / denominator
    accuracy = (picked.argmax(-1) == wanted).float().mean()
    stats = {"accuracy": accuracy.item(), "masked": int(mask.loss_mask.sum()),
             "level_mean": mask.level.float().mean().item()}
    if with_latent:
        # with a latent prior the head learns the whole latent, where nothing of the frame is known: level 0's rows
        scored = mask.loss_mask & (mask.level == 0)[:, None] if core.latent_table is not None else mask.loss_mask
        energy = core.codebooks.float().pow(2).sum(-1).mean(-1).sum()  # E|sum of one random code per level|^2
        error = (estimate[scored].float()
                 - latent_target(core.codebooks.float(), batch.codes, mask.level)[scored]).pow(2).sum(-1)
        loss = loss + latent_weight * error.sum() / energy / denominator
        if scored.any():
            stats["latent_error"] = (error.mean() / energy).item()
    return loss, stats


def check_compatible(meta: dict, codec, tokenizer=None, where: str = "") -> None:
    """A UserError unless `codec` (and `tokenizer`) are the ones the acoustic model was trained with."""
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


def codec_codebooks(codec_dir: str | Path) -> torch.Tensor:
    """The codec's RVQ codebooks, (levels, k, D)."""
    codec, _ = load_codec(codec_dir)
    return torch.stack([vq.codebook.detach().cpu() for vq in codec.quantizer.levels])


def load_acoustic(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SoundStorm, dict]:
    """The latest checkpoint's model (eval mode) and its config.json contents."""
    path = latest_checkpoint(run_dir, HINT)
    meta = load_config(path)
    model = load_weights(path, "model", SoundStorm(AcousticModelConfig.from_dict(meta["model_config"])))
    return model.to(device).eval(), meta


def rates_of_meta(meta: dict) -> Rates:
    return Rates(**meta["data"]["rates"])


def _rows(obj, rows: slice):
    """The same rows of every tensor field of a Batch or a TrainingMask."""
    return type(obj)(*(getattr(obj, f.name)[rows] for f in dataclasses.fields(obj)))


class AcousticTask(Task):
    """What the loop trains: SoundStorm on crops of the cached pairs."""

    def __init__(self, model_config: AcousticModelConfig, cfg: TrainConfig, decode: DecodeConfig,
                 pairs_dir: str | Path, rates: Rates, device: torch.device, codebooks: torch.Tensor | None = None):
        self.cfg, self.rates, self.device = cfg, rates, device
        self.levels = model_config.num_levels
        self.train_pairs = load_pairs(pairs_dir, "train")
        self.cross_pairs = load_pairs(pairs_dir, "cross") if cfg.cross_voice > 0 else []
        held_pairs = load_pairs(pairs_dir, "dev") or self.train_pairs
        self.crop = rates.seconds_to_frames(cfg.crop_seconds)
        self.prompt = rates.seconds_to_frames(decode.prompt_seconds)
        torch.manual_seed(cfg.seed)
        self.model = SoundStorm(model_config).to(device)
        if model_config.semantic_prior:  # a resumed run's checkpoint holds the same table
            self.model.set_prior(semantic_prior(self.train_pairs, rates, self.levels, model_config.codebook_size,
                                                model_config.semantic_vocab))
        if model_config.latent_head:
            if codebooks is None:
                raise ValueError("a model with a latent head needs the codec's codebooks")
            self.model.set_codebooks(codebooks[: self.levels].to(device))
            if model_config.latent_prior:  # a resumed run's checkpoint holds the same table
                self.model.set_latent_table(latent_table(self.train_pairs, rates, codebooks[: self.levels],
                                                         model_config.semantic_vocab).to(device))
        self.eval_batches = [self.draw(held_pairs, np.random.default_rng([cfg.seed, EVAL_SEED, j]))
                             for j in range(cfg.eval_batches)]

    def draw(self, pairs: Sequence[Pair], rng: np.random.Generator, cross: Sequence[Pair] = ()) -> Batch:
        try:
            batch = sample_batch(pairs, self.rates, self.cfg.batch_size, self.crop, self.prompt,
                                 self.cfg.prompt_elsewhere, self.levels, rng, cross, self.cfg.cross_voice)
        except ValueError as err:
            raise UserError(f"cannot draw training crops: {err}") from None
        return Batch(batch.semantic.to(self.device), batch.codes.to(self.device), batch.min_prompt.to(self.device))

    def micro_batches(self, step: int, rng: np.random.Generator, info: DistInfo) -> list[Any]:
        batch = self.draw(self.train_pairs, rng, self.cross_pairs)
        generator = torch.Generator(self.device).manual_seed(self.cfg.seed * 7919 + step)
        mask = training_mask(batch.codes, self.model.mask_id, generator, batch.min_prompt,
                             level0_share=self.cfg.level0_share)
        masked = mask.loss_mask.sum()  # the loss is the mean over the whole batch's masked tokens
        return [(_rows(batch, rows), _rows(mask, rows), masked)
                for rows in micro_slices(self.cfg.batch_size, self.cfg.micro_batch, info)]

    def loss(self, model: torch.nn.Module, micro: Any) -> tuple[torch.Tensor, dict[str, float]]:
        return token_loss(model, *micro, latent_weight=self.cfg.latent_weight)

    def evaluate(self) -> dict[str, float]:
        """Masked-token loss (cross-entropy only) and accuracy on fixed held-out crops with fixed masks; with a
        latent head also its relative error there."""
        results = [masked_loss(self.model, b, torch.Generator(self.device).manual_seed(EVAL_SEED + j))
                   for j, b in enumerate(self.eval_batches)]
        out = {"eval_loss": float(np.mean([loss.item() for loss, _ in results])),
               "eval_accuracy": float(np.mean([r["accuracy"] for _, r in results]))}
        errors = [r["latent_error"] for _, r in results if "latent_error" in r]  # a batch may hold no row it scores
        if errors:
            out["eval_latent_error"] = float(np.mean(errors))
        return out


def prepare_pairs(codec_dir: str | Path, tokenizer_dir: str | Path, corpus_dir: str | Path, pairs_dir: str | Path,
                  device: torch.device, info: DistInfo, progress: bool, cfg: TrainConfig | None = None
                  ) -> dict[str, Any]:
    """The training pairs' pairs.json, building (or completing) the cache first, with the cross-voice pairs where
    `cfg.cross_voice` asks for them; under torchrun rank 0 builds."""
    codec, tokenizer = load_codec_and_tokenizer(codec_dir, tokenizer_dir, device)
    if not Path(corpus_dir).is_dir():
        raise UserError(f"no corpus at {corpus_dir}; build it (python -m workbench data build) or pass --corpus")
    if info.main:
        try:
            pairs_meta = build_pairs(tokenizer, codec, corpus_dir, pairs_dir, progress=progress)
            if cfg is not None and cfg.cross_voice > 0:  # the renderings are cached; the pairs are made again
                voices = build_cross_pairs(tokenizer, codec, corpus_dir, pairs_dir, cfg.cross_sentences, cfg.seed,
                                           log=lambda m: print(m, file=sys.stderr) if progress else None)
                if voices == 0:
                    raise UserError("cross_voice > 0 needs the same sentences rendered in several train voices "
                                    "(espeak-ng + mbrola); none could be made")
                pairs_meta = {**pairs_meta, "cross_sentences": cfg.cross_sentences, "cross_voice_pairs": voices}
                atomic_write_json(Path(pairs_dir) / "pairs.json", pairs_meta)
        except (ValueError, FileNotFoundError) as err:
            raise UserError(f"cannot build the training pairs: {err}") from None
    if info.world > 1:
        dist.barrier()
        if not info.main:
            pairs_meta = json.loads((Path(pairs_dir) / "pairs.json").read_text())
    return pairs_meta


def train(out_dir: str | Path, preset: AcousticPreset, corpus_dir: str | Path, codec_dir: str | Path,
          tokenizer_dir: str | Path, pairs_dir: str | Path, *, resume: bool = False, device: str | None = None,
          progress: bool | None = None, preset_name: str | None = None) -> dict:
    """Train (or with `resume` continue) SoundStorm into `out_dir`; returns the summary (also summary.json).
    On resume every setting and the data must match the checkpoint's, except `steps` and `max_minutes`."""
    cfg, out_dir = preset.train, Path(out_dir)
    info, device = init_distributed(device)
    check_fresh_or_resumable(out_dir, resume)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pairs_meta = prepare_pairs(codec_dir, tokenizer_dir, corpus_dir, pairs_dir, device, info, bool(progress), cfg)
    codebooks = codec_codebooks(codec_dir) if preset.model.latent_head else None
    # a model without the latent head decodes every level from its codes, whatever the preset regresses
    decode = preset.decode if preset.model.latent_head else dataclasses.replace(preset.decode, regress_levels=0)
    model_config = preset.model.for_data(pairs_meta["levels"], pairs_meta["codebook_size"], pairs_meta["semantic_vocab"],
                                         None if codebooks is None else codebooks.shape[-1])
    rates = Rates(**pairs_meta["rates"])
    task = AcousticTask(model_config, cfg, preset.decode, pairs_dir, rates, device, codebooks)
    parameters = count_parameters(task.model)
    run = Run(out_dir, identity={"model_config": model_config.to_dict(), "data": {k: pairs_meta[k] for k in DATA_KEYS}},
              meta={"preset": preset_name, "corpus": str(corpus_dir), "codec": str(codec_dir),
                    "tokenizer": str(tokenizer_dir), "pairs": str(pairs_dir), "decode_config": decode.to_dict(),
                    "parameters": parameters},
              resume=resume, desc="soundstorm", progress=progress, hint=HINT)
    summary = fit(task, cfg, run, device=device, info=info)
    if not summary or summary.get("already_finished"):
        return summary
    initial, final = summary["initial_eval"] or {}, summary["final_eval"]
    return write_summary(out_dir, {
        **summary, "out": str(out_dir), "preset": preset_name,
        "seconds_of_audio": round(summary["steps"] * cfg.batch_size * (task.crop + task.prompt) / rates.codec_rate, 1),
        "initial_eval_loss": initial.get("eval_loss"), "final_eval_loss": final["eval_loss"],
        "initial_eval_accuracy": initial.get("eval_accuracy"), "final_eval_accuracy": final["eval_accuracy"],
        "parameters": parameters, "levels": model_config.num_levels, "codebook_size": model_config.codebook_size,
        "train_hours": pairs_meta["hours"]})
