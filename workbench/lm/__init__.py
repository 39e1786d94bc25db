"""The speech LM: Griffin (SpeechSSM's model) and the SpeechTransformer baseline over semantic tokens.

    config.py    ModelConfig / TrainConfig dataclasses, presets (smoke, laptop, small, paper), shape legend
    layers.py    RMSNorm, causal Conv1D with resets, half-dim RoPE, gated MLP
    modules.py   RecurrentBlock, AttentionBlock (MQA, local or global), ResidualBlock, their caches
    model.py     SpeechLM (one class; the block pattern picks Griffin or Transformer), parameter counts
    data.py      token manifests, long-form crops packed with resets, the SYNTHETIC hidden-topic source
    train.py     training loop, checkpoints, exact resume, DDP under torchrun
    generate.py  streaming, constant-memory (Griffin) decoding with temperature / top-k / top-p
    evaluate.py  per-position NLL far beyond the training window (lm.json)
    cli.py       `python -m workbench lm {train,eval,info,sample}`

The RG-LRU layer itself is `workbench.ops.RGLRU`, over the fused `workbench.ops.rglru` recurrence.
"""
