"""Evaluation with offline models that ship inside their wheels: ASR (pocketsphinx) for word error rate,
speaker embeddings (resemblyzer) for speaker similarity. Imported lazily: they pull heavy dependencies."""
