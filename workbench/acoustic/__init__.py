"""SoundStorm (Borsos et al. 2023): semantic tokens + a 3 s speaker prompt -> codec codes, windowed for any length.

    config.py      model / train / decode / eval settings, presets (smoke, laptop, paper), shape legend
    model.py       the bidirectional Conformer over codec frames, one output head per RVQ level
    masking.py     the training mask (pure functions)
    decode.py      confidence-based iterative decoding, level by level (pure)
    windowed.py    window planning, overlap conditioning, merging of the code stream
    data.py        (semantic tokens, codec codes) pairs per recording, cached; training crops
    train.py       the training task (trained by workbench.core.train), loading, codec/tokenizer compatibility checks
    synthesize.py  `Synthesizer`: a trained model + its codec and tokenizer, end to end
    evaluate.py    speaker similarity, WER, codec ceiling, speed (acoustic.json)
    notebook.py    what notebook 04 shows
    cli.py         `python -m workbench acoustic {train,synthesize,eval}`

Design and measured figures: workbench/acoustic/README.md.
"""
