"""Semantic speech tokenizer: 25 Hz speaker-invariant units (MFCC k-means baseline and a learned HuBERT-style
encoder), windowed tokenization of unbounded audio, metrics. See README.md beside this file."""

import os

# On a shared CPU, OpenMP threads that spin while waiting for each other make torch 5-10x slower as soon as another
# process competes for the cores (measured: 3-5 s vs 0.7 s per training step on 2 busy cores). Passive waiting
# only takes effect if set before torch is first imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
