"""Notebook 01 teaches how speech becomes 25 Hz semantic tokens: it trains an MFCC k-means baseline and a
HuBERT/ContentVec-style learned tokenizer, scores both on held-out speakers (phone purity, PNMI, speaker
invariance), tokenizes long recordings in windows and encodes the corpus for the language models.

Writes notebooks/01_tokenization.ipynb (no outputs). Edit this file, not the notebook, then run
`.venv/bin/python scripts/notebooks/build_all.py` (or this script).
"""

from workbench.pipeline.notebooks import write_notebook

NAME = "01_tokenization"

CELLS = [
    ("markdown", """# 01 · Tokenization: speech -> 25 Hz speaker-invariant units

SpeechSSM models *semantic* tokens: about 25 per second, discrete, and ideally carrying what was said rather than
who said it (the paper uses USM-v2 tokens). This notebook trains two tokenizers on the train split of
SynthBooks-Long and measures them on the two **held-out** speakers:

- **`mfcc_kmeans`**: the GSLM-style baseline, k-means over stacked MFCCs (4 x 10 ms frames per token, +-1 token of context);
- **`learned`**: a small dilated-convolution encoder trained HuBERT-style (predict the k-means units of masked frames;
  iteration 2 re-clusters its own features), made speaker-invariant ContentVec-style: the student hears the audio
  through a random vocal-tract-length warp (VTLP) while the targets come from the clean audio, and it hears train
  sentences rendered by one train voice while predicting the units of another voice's rendering, frames aligned
  by the synthesiser's phone boundaries (the cross-speaker loss; phones are never targets). Where the corpus mixes
  in real speech, real train stretches join that loss too: the student hears a real voice and predicts the units of
  a rendering of the same words (frames paired through the real speech's offline alignment).

Phone alignments *score* the units (PNMI, purity) and pair frames across voices; they are never targets. Finally the corpus is
encoded into `data/build/tokens/<preset>` for the language model notebooks."""),
    ("parameters", """# Parameters (papermill): the whole interface of this notebook.
preset = "smoke"          # smoke | laptop | paper
corpus_dir = None         # default: data/build/<preset> (built if missing)
reports = "reports/latest"
max_minutes = None        # training budget (default: the preset's)
tokenizer_dir = None      # default: runs/tokenizer/<preset>; reused if trained there with the same config
tokens_dir = None         # default: data/build/tokens/<preset>
real_speech = None        # folders of real recordings (default: the test fixtures + ../shared/data/real-speech)"""),
    ("code", """import json
from pathlib import Path

import numpy as np

from workbench.core import paths
from workbench.core.config import override
from workbench.data.corpus import build_preset
from workbench.data.loaders import open_dataset
from workbench.core.io import write_report
from workbench.core.plots import audio_player
from workbench.tokenizer import notebook as figures
from workbench.tokenizer.config import PRESETS, TOKEN_RATE
from workbench.tokenizer.encode import encode_corpus
from workbench.tokenizer.evaluate import compare, evaluate, parallel_edit_distances, summary_table
from workbench.tokenizer.train import train_or_load
from workbench.tokenizer.windowed import AudioSource, plan_windows, tokenize_windowed

corpus_dir = Path(corpus_dir or paths.corpus_dir(preset))
if not (corpus_dir / "manifest.jsonl").exists():
    build_preset(preset, corpus_dir)
config = PRESETS[preset] if max_minutes is None else override(PRESETS[preset], max_minutes=max_minutes)
tokenizer_dir = Path(tokenizer_dir or paths.run_dir("tokenizer", preset))
tokens_dir = Path(tokens_dir or paths.tokens_dir(preset))
real_speech = None if real_speech is None else [Path(p) for p in real_speech]
print(config)"""),
    ("markdown", """## Train (or reuse) both tokenizers
Everything below the k-means runs within `max_minutes` of wall-clock time; the learned encoder's masked-prediction
loss (solid) and the cross-speaker loss (dotted: voice B's audio -> voice A's units) fall in each iteration
(iteration 2 starts higher: new, harder targets)."""),
    ("code", """tokenizers = train_or_load(corpus_dir, config, tokenizer_dir)
learned, baseline = tokenizers["learned"], tokenizers["mfcc_kmeans"]
figures.training_figure(learned.training["history"]).show()
print({k: learned.training.get(k) for k in ("steps", "seconds", "final_loss", "final_masked_accuracy",
                                            "final_parallel_loss", "parallel")})"""),
    ("markdown", """## Units over a spectrogram
A held-out speaker's first seconds: log-mel spectrogram with the exact phone alignment, and each tokenizer's units
(one per 40 ms). Good units change where the phones change and stay put within a phone."""),
    ("code", """example = [r for r in open_dataset(corpus_dir).recordings if r.split == "test"][0]
seconds = min(6.0, example.duration)
audio = example.load(0.0, seconds)
phones = [p for p in example.alignment_data()["phones"] if p[2] <= seconds]
units = {name: tok.units(audio).numpy() for name, tok in tokenizers.items()}
figures.units_figure(audio, phones, units, title=f"{example.id} ({example.speaker}, held out)").show()
audio_player(audio)"""),
    ("markdown", """Loudness is not content: every input is first scaled so that its speech sits at one level
(`config.input_level_db`, one gain per file, pauses left out of the measure), so the same excerpt recorded 12 dB
quieter gives the same units (unlevelled, the learned units kept about a fifth of themselves: tokenizer README)."""),
    ("code", """quiet = audio * np.float32(10 ** (-12 / 20))
for name, tok in tokenizers.items():
    print(f"{name:12s} units unchanged 12 dB quieter: {np.mean(tok.units(quiet).numpy() == units[name]):.0%}")"""),
    ("markdown", """In JupyterLab, explore: pick a held-out recording and a start time to redraw the units, and pick a unit to
hear what it sounds like in that excerpt (its 40 ms frames, one after another). A headless run shows the figure
above instead."""),
    ("code", """explorer = figures.recording_explorer([r for r in open_dataset(corpus_dir).recordings if r.split == "test"],
                                      tokenizers)
if explorer is not None:
    display(explorer)"""),
    ("markdown", """## Measurements
On the held-out speakers' dev+test chapters: **PNMI** and **phone purity** (pause frames excluded), **codebook
usage** and **bitrate**, encode **speed** (x real time, end-to-end from the audio file); on the parallel set: the
**cross-voice unit edit distance** (same sentence, two held-out voices; lower = more speaker-invariant); and usage
and speed on real recordings. Written to `tokenizer.json` in the report folder."""),
    ("code", """results = {name: evaluate(tok, corpus_dir, real_speech) for name, tok in tokenizers.items()}
results["learned_vs_baseline"] = compare(results)
write_report("tokenizer.json", results, reports)
print(summary_table(results))
figures.metrics_figure(results).show()"""),
    ("markdown", """## Speaker invariance
Each parallel sentence read by both held-out voices: the edit distance between their (deduplicated) unit
sequences. Then one sentence's units from each voice, side by side."""),
    ("code", """per_sentence = {name: parallel_edit_distances(tok, corpus_dir) for name, tok in tokenizers.items()}
voices = per_sentence["learned"]["voices"]
figures.invariance_figure({n: p["per_sentence"] for n, p in per_sentence.items()}, voices).show()
from workbench.tokenizer.metrics import dedup
rows = [json.loads(line) for line in (corpus_dir / "parallel.jsonl").read_text().splitlines()]
pair = {r["speaker"]: r for r in rows if r["sentence_index"] == 0}
print(pair[voices[0]]["text"])
for name, tok in tokenizers.items():
    for v in voices:
        print(f"{name:12s} {v}: {' '.join(map(str, dedup(tokenize_windowed(tok, AudioSource(corpus_dir / pair[v]['audio'])))))}")"""),
    ("markdown", """## Windowed tokenization
Long recordings are tokenized in overlapping windows (30 s with 4 s overlap at laptop/paper scale), read from
disk one at a time and merged at the middle of each overlap. Every stage is local (the encoder sees
`receptive_frames` on each side, less than half the overlap; normalisation uses training-set statistics, and the
level gain is the whole file's, measured before the first window), so the
merged units equal whole-file units except at the very end, where the paper's fix pads the last window with the
recording's beginning rather than silence."""),
    ("code", """longest = max(open_dataset(corpus_dir).recordings, key=lambda r: r.duration)
source = AudioSource.of(longest)
windowed = tokenize_windowed(learned, source)
whole = learned.units(longest.load()).numpy()
agree = windowed == whole
mismatch = np.flatnonzero(~agree)
print(f"{longest.id}: {longest.duration / 60:.1f} min, {len(windowed)} units; windowed == whole-file on "
      f"{agree.mean():.2%} of frames; the differences lie in the last {len(agree) - mismatch.min() if len(mismatch) else 0} "
      f"frames (receptive field: +-{config.receptive_frames} frames)")
w, o = round(config.window_seconds * TOKEN_RATE), round(config.overlap_seconds * TOKEN_RATE)
figures.windows_figure(plan_windows(len(windowed), w, o), len(windowed), agree).show()"""),
    ("markdown", """## Encode the corpus for the language model
`data/build/tokens/<preset>/manifest.jsonl` lists every recording (`id`, `split`, `path`, `num_tokens`,
`speaker`); each `path` is a 1-D integer array of learned units at 25 per second."""),
    ("code", """summary = encode_corpus(learned, corpus_dir, tokens_dir)
print(json.dumps(summary, indent=1))"""),
]

if __name__ == "__main__":
    print("wrote", write_notebook(NAME, CELLS))
