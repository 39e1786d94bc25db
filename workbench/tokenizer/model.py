"""A trained tokenizer: global feature normalisation + (optional) encoder + k-means centroids; saved as
``tokenizer.json`` (kind, config, training summary) + ``model.safetensors`` (normalisation stats, centroids,
encoder weights).

Two kinds share this class:
- ``mfcc_kmeans``: the GSLM-style baseline, k-means over stacked MFCCs (4 x 10 ms frames, +-1 token of context);
- ``learned``: k-means over block `feature_layer` of the self-supervised encoder (encoder.py, train.py).

    audio (B, N) -> speech level to `config.input_level_db` (one gain per signal) -> log-mel (B, 4T, M)
      -> model input (B, T, F), normalised with training-set mean/std -> features (B, T, D)
      -> nearest centroid -> units (B, T) int64 in [0, K)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.core.audio import frame_power, gain_to_level, power_level_db
from workbench.core.errors import UserError
from workbench.core.io import atomic_path, atomic_write_json
from workbench.tokenizer import features as feat
from workbench.tokenizer.config import TokenizerConfig
from workbench.tokenizer.encoder import Encoder
from workbench.tokenizer.kmeans import assign
from workbench.tokenizer.windowed import AudioSource

KINDS = ("mfcc_kmeans", "learned")
FORMAT = "speechssm-workbench-tokenizer"
VERSION = 1


class TokenizerError(ValueError):
    """A missing, incomplete or corrupt tokenizer folder; the message says which and what to do."""


class Tokenizer:
    def __init__(self, kind: str, config: TokenizerConfig, mean: torch.Tensor, std: torch.Tensor,
                 centroids: torch.Tensor | None = None, encoder: Encoder | None = None,
                 training: dict[str, Any] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown tokenizer kind {kind!r}; kinds: {', '.join(KINDS)}")
        if kind == "learned" and encoder is None:
            raise ValueError("a learned tokenizer needs its encoder")
        self.kind, self.config, self.mean, self.std = kind, config, mean, std
        self.centroids, self.encoder, self.training = centroids, encoder, training or {}
        if encoder is not None:
            encoder.eval()

    @property
    def num_units(self) -> int:
        return self.config.num_units

    # -- audio -> features -> units ----------------------------------------------------------------------------
    def gain(self, *signals: np.ndarray | torch.Tensor | AudioSource) -> float:
        """The factor that brings the speech of one signal ((N,), or a file read in chunks) to
        `config.input_level_db`; of several, their frames pooled as one recording (the two members of a probe pair
        share one gain, so the prefix they share keeps its units); 1 for a tokenizer that reads audio at its own
        level, or for silence."""
        target = self.config.input_level_db
        if target is None:
            return 1.0
        power = np.concatenate([s.frame_power() if isinstance(s, AudioSource) else frame_power(np.asarray(s, np.float32))
                                for s in signals])
        return gain_to_level(power_level_db(power), target)

    def model_input(self, audio: torch.Tensor, alpha: torch.Tensor | None = None,
                    gain: float | torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) -> (B, T, F) normalised frames: stacked MFCCs (baseline) or stacked log-mel (encoder input).
        Each row is levelled by its own `gain` unless `gain` (a number, or (B,)) says otherwise: windowed
        tokenization gives every window of a file the file's gain."""
        if self.config.input_level_db is not None:
            if gain is None:
                gain = [self.gain(row) for row in audio.detach().cpu()]
            audio = audio * torch.as_tensor(gain, dtype=audio.dtype, device=audio.device).reshape(-1, 1)
        logmel = feat.log_mel(audio, self.config.n_mels, alpha)
        x = (feat.mfcc_features(logmel, self.config.n_mfcc, self.config.mfcc_context) if self.kind == "mfcc_kmeans"
             else feat.stack_subframes(logmel))
        return (x - self.mean) / self.std

    @torch.no_grad()
    def features(self, audio: torch.Tensor, layer: int | None = None,
                 gain: float | torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) -> (B, T, D) the vectors k-means reads."""
        x = self.model_input(audio, gain=gain)
        if self.kind == "mfcc_kmeans":
            return x
        return self.encoder.features(x, layer or self.config.feature_layer)

    @torch.no_grad()
    def units(self, audio: np.ndarray | torch.Tensor, gain: float | torch.Tensor | None = None) -> torch.Tensor:
        """(N,) or (B, N) audio, processed whole (no windowing) -> (T,) or (B, T) int64 units."""
        if self.centroids is None:
            raise RuntimeError("this tokenizer has no k-means centroids yet")
        x = feat.as_batch(audio)
        f = self.features(x, gain=gain)
        u = assign(f.reshape(-1, f.shape[-1]), self.centroids)[0].reshape(f.shape[:2])
        return u[0] if np.ndim(audio) == 1 else u

    # -- save / load -------------------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        tensors = {"norm.mean": self.mean, "norm.std": self.std, "kmeans.centroids": self.centroids}
        if self.encoder is not None:
            tensors.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        return {k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` + ``model.safetensors`` into `path` (each atomically; the JSON last)."""
        path = Path(path)
        state = self.state()
        with atomic_path(path / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        atomic_write_json(path / "tokenizer.json", {
            "format": FORMAT, "version": VERSION, "kind": self.kind, "num_units": self.num_units,
            "token_rate_hz": 25.0, "config": self.config.to_dict(), "training": self.training,
            "tensors": {k: list(v.shape) for k, v in state.items()},
        })
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        path = Path(path)
        meta_path, weights = path / "tokenizer.json", path / "model.safetensors"
        if not path.is_dir():
            raise TokenizerError(f"{path}: no such tokenizer folder (train one: python -m workbench tokenizer train)")
        for p in (meta_path, weights):
            if not p.exists():
                raise TokenizerError(f"{path}: incomplete tokenizer, {p.name} is missing (train it again)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise TokenizerError(f"{meta_path}: corrupt tokenizer metadata ({err})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise TokenizerError(f"{meta_path}: not a workbench tokenizer (format {meta.get('format')!r})"
                                 if isinstance(meta, dict) else f"{meta_path}: not a workbench tokenizer")
        if meta.get("version") != VERSION:
            raise TokenizerError(f"{meta_path}: tokenizer format version {meta.get('version')}, expected {VERSION}")
        try:
            if isinstance(meta.get("config"), dict):  # written before input levelling: it reads audio as it is
                meta["config"].setdefault("input_level_db", None)
            config = TokenizerConfig.from_dict(meta["config"], what=f"{meta_path} config")
            state = load_file(str(weights))
        except UserError as err:
            raise TokenizerError(str(err)) from None
        except (SafetensorError, OSError, TypeError, ValueError, KeyError, AttributeError) as err:
            raise TokenizerError(f"{path}: corrupt tokenizer ({type(err).__name__}: {err})") from None
        missing = {"norm.mean", "norm.std", "kmeans.centroids"} - set(state)
        if missing:
            raise TokenizerError(f"{weights}: corrupt tokenizer, tensors {sorted(missing)} missing")
        encoder = None
        if meta["kind"] == "learned":
            encoder = Encoder(config)
            try:
                encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
            except RuntimeError as err:
                raise TokenizerError(f"{weights}: encoder weights do not match the config ({err})") from None
        tok = cls(meta["kind"], config, state["norm.mean"], state["norm.std"], state["kmeans.centroids"], encoder,
                  meta.get("training"))
        if tuple(tok.centroids.shape) != (config.num_units, tok.centroids.shape[1]):
            raise TokenizerError(f"{weights}: {tok.centroids.shape[0]} centroids, config says {config.num_units}")
        return tok


def fingerprint(tok: Tokenizer) -> str:
    """A short hash of everything that decides the units (kind, config, tensors): tokens made by another
    tokenizer are never mixed into an encoded corpus."""
    h = hashlib.sha256(json.dumps([tok.kind, dataclasses.asdict(tok.config)], sort_keys=True).encode())
    for name, tensor in sorted(tok.state().items()):
        h.update(name.encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()[:16]
