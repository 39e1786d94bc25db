"""The acoustic stage end to end: semantic tokens + a speaker prompt -> codec codes -> waveform.

`Synthesizer` bundles a trained SoundStorm with the codec and tokenizer it was trained with (checked by
fingerprint), validates its inputs (semantic tokens inside the vocabulary, a prompt long enough) and runs the
windowed synthesis of `windowed.py`. The CLI, the evaluation and notebook 04 all go through it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from workbench.acoustic.config import DecodeConfig
from workbench.acoustic.decode import DecodeTrace
from workbench.acoustic.model import SoundStorm
from workbench.acoustic.train import check_compatible, load_acoustic, load_codec_and_tokenizer, rates_of_meta
from workbench.acoustic.windowed import Prompt, make_prompt, synthesize_codes
from workbench.codec.stream import decode_long, encode_long
from workbench.core import validate
from workbench.core.errors import UserError
from workbench.tokenizer.windowed import tokenize_windowed


class Synthesizer:
    def __init__(self, model: SoundStorm, codec, tokenizer, meta: dict, decode: DecodeConfig | None = None,
                 device: str | torch.device = "cpu"):
        check_compatible(meta, codec, tokenizer)
        self.model, self.codec, self.tokenizer, self.meta = model.eval(), codec.eval(), tokenizer, meta
        self.decode = decode or DecodeConfig.from_dict(meta["decode_config"])
        self.rates = rates_of_meta(meta)
        self.levels = model.cfg.num_levels
        self.device = torch.device(device)
        self.run_dir: Path | None = None
        self.check_regress_levels(self.decode.regress_levels)

    def check_regress_levels(self, n: int) -> int:
        validate.count("regress levels", n, 0, self.levels)
        if n and self.model.latent_head is None:
            raise UserError(f"regress levels {n}: this acoustic model has no latent head to regress with "
                            "(train one with --latent-head)")
        return n

    @classmethod
    def load(cls, run_dir: str | Path, codec_dir: str | Path | None = None, tokenizer_dir: str | Path | None = None,
             decode: DecodeConfig | None = None, device: str | torch.device = "cpu") -> "Synthesizer":
        """From a run folder; the codec and tokenizer default to the folders it was trained with."""
        model, meta = load_acoustic(run_dir, device)
        codec, tokenizer = load_codec_and_tokenizer(codec_dir or meta["codec"], tokenizer_dir or meta["tokenizer"], device)
        synth = cls(model, codec, tokenizer, meta, decode, device)
        synth.run_dir = Path(run_dir)
        return synth

    def with_decode(self, **changes) -> "Synthesizer":
        if "temperature" in changes:
            changes["temperature"] = validate.temperature(changes["temperature"], "temperature")
        if "guidance" in changes:
            changes["guidance"] = validate.guidance(changes["guidance"], "guidance")
        if "first_level_iterations" in changes:
            validate.count("iterations", changes["first_level_iterations"], 1, 1000)
        if "finer_level_iterations" in changes:
            validate.count("finer iterations", changes["finer_level_iterations"], 1, 1000)
        if "regress_levels" in changes:
            self.check_regress_levels(changes["regress_levels"])
        other = object.__new__(Synthesizer)
        other.__dict__.update(self.__dict__, decode=dataclasses.replace(self.decode, **changes))
        return other

    # -- inputs ----------------------------------------------------------------------------------------------
    def semantic_tokens(self, audio: np.ndarray) -> np.ndarray:
        """Ground-truth semantic tokens of a waveform (windowed tokenization)."""
        return tokenize_windowed(self.tokenizer, np.asarray(audio, dtype=np.float32))

    def codes(self, audio: np.ndarray) -> np.ndarray:
        return encode_long(self.codec, audio).numpy()

    def prompt(self, audio: np.ndarray) -> Prompt:
        """A speaker prompt from the first `prompt_seconds` of a waveform."""
        need = self.rates.seconds_to_frames(self.decode.prompt_seconds)
        audio = np.asarray(audio, dtype=np.float32)[: need * self.rates.codec_hop]
        if len(audio) < need * self.rates.codec_hop:
            raise UserError(f"the speaker prompt is {len(audio) / self.rates.sample_rate:.2f} s long; "
                            f"{self.decode.prompt_seconds:g} s are needed")
        return make_prompt(self.semantic_tokens(audio), self.codes(audio), self.rates, need)

    @property
    def max_tokens(self) -> int:
        """The longest semantic stream synthesized at once: MAX_SYNTH_SECONDS (an hour) of tokens."""
        return int(validate.MAX_SYNTH_SECONDS * self.rates.semantic_rate)

    def check_semantic(self, tokens: np.ndarray, name: str = "semantic tokens") -> np.ndarray:
        tokens = np.asarray(tokens)
        vocab = self.model.cfg.semantic_vocab
        if tokens.ndim != 1 or tokens.size == 0:
            raise UserError(f"{name}: expected a non-empty 1-D array of tokens, got shape {tokens.shape}")
        if tokens.size > self.max_tokens:
            raise UserError(f"{name}: {tokens.size} tokens ({tokens.size / self.rates.semantic_rate:.0f} s); at most "
                            f"{self.max_tokens} ({validate.MAX_SYNTH_SECONDS:g} s) are synthesized at once")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise UserError(f"{name}: tokens must be integers, got {tokens.dtype}")
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise UserError(f"{name}: tokens outside the vocabulary 0..{vocab - 1} "
                            f"(found {int(tokens.min())}..{int(tokens.max())})")
        return tokens.astype(np.int64)

    # -- synthesis -------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def synthesize_codes(self, streams: Sequence[np.ndarray], prompts: Sequence[Prompt], seed: int = 0,
                         trace: DecodeTrace | None = None, progress: bool = False) -> list[np.ndarray]:
        streams = [self.check_semantic(s, f"semantic stream {i}") for i, s in enumerate(streams)]
        regress = self.decode.regress_levels

        whole: dict[str, torch.Tensor] = {}

        def fn(semantic, codes, level, pad):  # the coarsest `regress` levels from the latent head's estimate
            if level >= regress:
                return self.model.level_logits(semantic, codes, level, pad)
            if self.model.latent_table is None:
                return self.model.nearest_code_logits(semantic, codes, level, pad)
            # a latent prior's head learned the whole latent where nothing of the window is known (level 0's
            # rows): it estimates once, at level 0's pass, and every level codes what that estimate leaves
            if level == 0 or whole.get("batch") is not semantic:  # a new batch of windows
                whole.update(batch=semantic, latent=self.model.whole_latent(semantic, codes, pad))
            return self.model.nearest_code_logits(semantic, codes, level, pad, whole=whole["latent"])
        generator = torch.Generator(self.device).manual_seed(validate.seed(seed, "seed"))
        return synthesize_codes(fn, streams, prompts, self.rates, self.levels, self.model.mask_id, self.decode,
                                generator, trace, self.device, progress=progress)

    def audio(self, codes: np.ndarray, chunk_seconds: float = 10.0) -> np.ndarray:
        """Codes (q, frames) -> waveform, through the codec's chunked (exact, bounded-memory) decoder."""
        return decode_long(self.codec, torch.from_numpy(np.asarray(codes)), chunk_seconds).numpy()

    def synthesize(self, semantic: np.ndarray, prompt: Prompt, seed: int = 0, progress: bool = False) -> np.ndarray:
        """Semantic tokens (s,) in the voice of `prompt` -> waveform of s semantic frames (at most an hour:
        `max_tokens`); `progress` shows a bar of windows on stderr."""
        codes = self.synthesize_codes([semantic], [prompt], seed, progress=progress)[0]
        return self.audio(codes)[: len(semantic) * self.rates.semantic_hop]
