"""Where things live, by stage and preset: one convention for every stage.

    data/build/<preset>/                   the built corpus (`workbench.data`)
    data/build/tokens/<preset>/            the corpus as semantic tokens (the LM's input)
    data/build/acoustic/<preset>/          SoundStorm's cached (tokens, codes) training pairs
    runs/<stage>/<preset>/                 a stage's trained model: tokenizer, codec, acoustic
    runs/lm/<preset>/<model>/              the LM's two models (griffin, transformer)

Paths are relative to the working directory (the repository root in the CLI, the notebooks and the tests).
"""

from __future__ import annotations

from pathlib import Path

RUNS = Path("runs")
BUILD = Path("data/build")
STAGES = ("tokenizer", "lm", "codec", "acoustic")


def corpus_dir(preset: str) -> Path:
    return BUILD / preset


def tokens_dir(preset: str) -> Path:
    return BUILD / "tokens" / preset


def pairs_dir(preset: str) -> Path:
    return BUILD / "acoustic" / preset


def run_dir(stage: str, preset: str, *parts: str) -> Path:
    """``runs/<stage>/<preset>[/parts...]``: where a stage's trained model lives."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return RUNS.joinpath(stage, preset, *parts)


def tokenizer_dir(preset: str, kind: str = "learned") -> Path:
    return run_dir("tokenizer", preset, kind)


def lm_run_dir(preset: str, model: str = "griffin") -> Path:
    return run_dir("lm", preset, model)


def codec_dir(preset: str) -> Path:
    return run_dir("codec", preset)


def acoustic_dir(preset: str) -> Path:
    return run_dir("acoustic", preset)
