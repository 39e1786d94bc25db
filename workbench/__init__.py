"""SpeechSSM Workbench: long-form spoken language modeling with Griffin, runnable on a laptop CPU.

The package follows the data: ``data`` (corpus, loaders) -> ``tokenizer`` -> ``lm`` (Griffin and the
SpeechTransformer baseline) -> ``acoustic`` (SoundStorm) -> ``codec`` -> waveform. ``ops`` holds the RG-LRU
recurrence over the native sources in ``kernels/``; ``bench`` and ``eval`` measure.
"""

import os

# How long torch's OpenMP threads spin before they sleep between parallel regions. libgomp's default (300,000
# spins) makes torch 5-20x slower as soon as another process competes for the cores; never spinning (passive)
# costs ~40% when the work has the cores to itself. Laptop codec training, 2 cores, steps/s alone / beside one busy
# process: passive 8.6 / 9.9, 1,000 spins 10.4 / 8.6, 3,000 13.9 / 6.9, 10,000 15.5 / 4.6, 300,000 15.3 / 0.8.
# 3,000 (`SPIN_SHARED`) takes most of the speed and stays usable on a busy machine: notebooks, the demo, tests.
# `make reproduce` runs one stage at a time and expects the machine to itself, so its stages get `SPIN_ALONE`
# (`workbench.pipeline.reproduce.spin_alone`; 2026-12-05, alone: codec 14.3 -> 16.5 steps/s, Griffin LM 1.92 ->
# 2.06, SoundStorm 1.77 -> 1.78; beside a busy process the codec 7.0 -> 4.4). Read when torch is first imported; a
# user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins over both.
SPIN_SHARED, SPIN_ALONE = "3000", "10000"
SPIN_CHOSEN_BY_USER = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
if not SPIN_CHOSEN_BY_USER:
    os.environ["GOMP_SPINCOUNT"] = SPIN_SHARED

__version__ = "0.1.0"
