"""The shared layer under every stage: what the tokenizer, LM, codec and SoundStorm have in common.

- ``errors``: `UserError`, the one-line refusal every entry point prints without a traceback;
- ``io``: atomic writes (temp file, fsync, rename), JSONL that survives a torn last line, the report folder;
- ``audio``: 16 kHz mono float32 in and out, with the checks that name a bad file;
- ``config``: `Config`, the base of every settings dataclass (to and from JSON one way, with a format
  version), presets (`smoke`, `laptop`, `paper`) and overrides;
- ``paths``: where each stage's trained model and built data live (``runs/<stage>/<preset>``, ``data/build``);
- ``checkpoint``: atomic safetensors checkpoints with optimizer and RNG state;
- ``train``: the one training loop (step and time budgets, warmup + cosine by progress, accumulation,
  clipping, DDP, exact resume, JSONL metrics);
- ``device``: device choice and the torchrun process group;
- ``nn``: building blocks used by more than one stage (RMSNorm, RoPE, initialisers);
- ``cli``: the `--json` / `--reports` conventions of every command; ``plots``: small plotting helpers.

Nothing here imports a stage: imports flow from the stages down to ``core`` (tests/test_layering.py).
"""
