"""SpeechSSM Workbench: long-form spoken language modeling with Griffin, runnable on a laptop CPU.

The package follows the data: ``data`` (corpus, loaders) -> ``tokenizer`` -> ``lm`` (Griffin and the
SpeechTransformer baseline) -> ``acoustic`` (SoundStorm) -> ``codec`` -> waveform. ``ops`` holds the RG-LRU
recurrence over the native sources in ``kernels/``; ``bench`` and ``eval`` measure.
"""

__version__ = "0.1.0"
