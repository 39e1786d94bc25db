"""Notebook 00 teaches where the data comes from: SynthBooks-Long, Jane Austen's novels read chapter by chapter
by ten synthetic speakers with exact word and phone alignments -- who reads what and for how long, one aligned
recording, and the same sentence in two held-out voices.

Writes notebooks/00_corpus.ipynb (no outputs). Edit this file, not the notebook, then run
`.venv/bin/python scripts/notebooks/build_all.py` (or this script).
"""

from workbench.pipeline.notebooks import write_notebook

NAME = "00_corpus"

CELLS = [
    ("markdown", """# 00 · The corpus: SynthBooks-Long

SpeechSSM is about *long-form* speech: minutes of one speaker reading, where a language model must keep track of
what was said long ago. Real long-form corpora (LibriLight, LibriSpeech-Long) are large downloads; this workbench
has to run anywhere, offline. So it **makes** its own: the six Jane Austen novels, each chapter read aloud by
one of ten synthetic speakers (mbrola diphone voices with different pitch, rate and vocal-tract length).

Because the synthesizer decides every phone's duration, the alignments are exact: we know when each word and
phone starts, to the sample. Later notebooks use them to measure tokenizers (phone purity), and the held-out
speakers to measure speaker invariance and voice cloning.

Synthetic voices alone would teach the models eight voices made from four diphone sets. So where real read speech
is at hand -- a LibriSpeech-layout folder: `../shared/data/mini-librispeech` beside the repository, or any folder
named by `WORKBENCH_REAL_SPEECH` -- the laptop corpus **mixes it in**: its speakers split into train / dev / test
(disjoint), each chapter's consecutive utterances joined into one long recording, every utterance aligned
offline (pocketsphinx), so every later notebook measures synthetic and real held-out voices apart (and the tokenizer
hears real train speech beside renderings of the same words). Without such a
folder the corpus is synthetic only, and says so. Fourteen real training voices are still few for a codec that
must code voices it never heard, so where `../shared/data/real-speech/librispeech_train-clean-100_1utt_per_speaker`
is present the laptop corpus also takes its one-utterance speakers as **extra voices for the codec alone**
(`voices.jsonl`; speakers it already holds left out; a third of the real training crops).

Everything here calls `workbench.data`; this notebook only shows."""),
    ("parameters", """# Parameters (papermill): the whole interface of this notebook.
preset = "smoke"          # smoke | laptop | paper
corpus_dir = None         # default: data/build/<preset>
reports = "reports/latest"
jobs = None               # parallel processes (default: all cores)"""),
    ("code", """import json
from pathlib import Path

from workbench.core import paths
from workbench.core.io import write_report
from workbench.core.plots import audio_player, waveform_with_words
from workbench.data.corpus import build_preset
from workbench.data.loaders import open_dataset
from workbench.data.notebook import duration_figure, speaker_figure, speaking_rate

corpus_dir = Path(corpus_dir or paths.corpus_dir(preset))"""),
    ("markdown", """## Build (or reuse) the corpus
Building is resumable: chapters already on disk are kept, so re-running this cell is cheap. The statistics go to
`corpus.json` in the report folder."""),
    ("code", """stats = build_preset(preset, corpus_dir, jobs=jobs)
write_report("corpus.json", stats, reports)
print(json.dumps({k: stats[k] for k in ("hours", "speakers", "chapters", "segments", "build_seconds")}, indent=1))
for split, s in stats["splits"].items():
    print(f"{split:5s} {s['hours']:6.2f} h ({s['real_hours']:.2f} h real)  {s['recordings']:3d} recordings  "
          f"speakers: {', '.join(s['speakers'])}")
real = stats["real_speech"]
print(f"real speech from {real['root']}: held-out speakers dev {real['speakers']['dev']}, test "
      f"{real['speakers']['test']}; {real['aligned_utterances']} utterances aligned; training crops drawn "
      f"{real['sampling_weight']:g}x as often per second" if real["root"] else f"no real speech: {real['why']}")
extra = stats["extra_voices"]
print(f"extra voices for the codec from {extra['root']}: {len(extra['speakers'])} speakers, {extra['minutes']:.1f} "
      f"min, {extra['share']:.0%} of the real training crops" if extra["root"] else f"no extra voices: {extra['why']}")"""),
    ("markdown", """## Who reads what, and for how long
Training chapters are spread evenly over eight readers; dev and test are read only by the two held-out
synthetic speakers (and the held-out real ones), so every evaluation is on voices the models never heard."""),
    ("code", """corpus = open_dataset(corpus_dir)
segments = open_dataset(corpus_dir, split="test-segments")
speaker_figure(corpus).show()
duration_figure(corpus, segments).show()
print("words per minute:", speaking_rate(corpus))"""),
    ("markdown", """## One recording, aligned
The first seconds of a test segment: waveform and log-mel spectrogram with each word's exact span. Dev/test
chapters are also cut at sentence boundaries into pieces of at most four minutes, the shape of
LibriSpeech-Long."""),
    ("code", """example = segments.recordings[0]
align = example.alignment_data()
seconds = min(8.0, example.duration)
audio = example.load(0.0, seconds)
words = [w for w in align["words"] if w[2] <= seconds]
waveform_with_words(audio, words, title=f"{example.id} ({example.speaker})").show()
print(" ".join(w for w, _, _ in words))
audio_player(audio)"""),
    ("markdown", """## The same sentence, two held-out voices
The parallel set has identical sentences read by both held-out speakers: what a speaker-invariant tokenizer
must map to the same units."""),
    ("code", """from IPython.display import display

from workbench.core.audio import load_audio

parallel = [json.loads(line) for line in (corpus_dir / "parallel.jsonl").read_text().splitlines()]
for p in (p for p in parallel if p["sentence_index"] == 0):
    print(p["speaker"], "-", p["text"])
    display(audio_player(load_audio(corpus_dir / p["audio"])))"""),
]

if __name__ == "__main__":
    print("wrote", write_notebook(NAME, CELLS))
