"""Semantic speech tokenizer: 25 Hz speaker-invariant units (MFCC k-means baseline and a learned HuBERT-style
encoder), windowed tokenization of unbounded audio, metrics. See README.md beside this file."""
