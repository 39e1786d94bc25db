"""SpeechSSM Workbench: long-form spoken language modeling with Griffin, runnable on a laptop CPU.

The package follows the data: ``data`` (corpus, loaders) -> ``tokenizer`` -> ``lm`` (Griffin and the
SpeechTransformer baseline) -> ``acoustic`` (SoundStorm) -> ``codec`` -> waveform. ``ops`` holds the RG-LRU
recurrence over the native sources in ``kernels/``; ``bench`` and ``eval`` measure.
"""

import os

# On a shared CPU, OpenMP threads that spin while waiting for each other make torch 5-10x slower as soon as
# another process competes for the cores (measured: 3-5 s vs 0.7 s per training step on 2 busy cores). Passive
# waiting only takes effect if set before torch is first imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
