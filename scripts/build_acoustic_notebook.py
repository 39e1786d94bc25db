"""Write notebooks/04_acoustic_synthesis.ipynb (no outputs). Run: python scripts/build_acoustic_notebook.py

Notebook 04 holds the acoustic stage; this script writes its codec part (SoundStorm's cells join it later)."""

from workbench.notebooks import write_notebook

CELLS = [
    ("code", """# Parameters (papermill overrides these).
preset = "smoke"                        # smoke | laptop | paper
corpus_dir = None                       # None: data/build/<preset> (built if missing)
codec_dir = None                        # None: data/build/codec/<preset> (trained if it holds no codec)
max_minutes = None                      # training budget if the codec must be trained; None: the preset's
real_dir = "../shared/data/real-speech"  # real human speech for the comparison (skipped if absent)
reports = "reports/latest"
device = None                           # None: cuda when available""", {"tags": ["parameters"]}),
    ("markdown", """# 04 · Acoustic synthesis: the neural audio codec

SpeechSSM's acoustic stage ends in SoundStream codec tokens that a decoder turns into a waveform. SoundStream's
weights are closed, so the workbench trains its own codec of the same family: a convolutional encoder maps
16 kHz audio to 50 latent vectors per second, **residual vector quantization** turns each into up to six
10-bit codes (0.5 kbps per level, 3.0 kbps with all six), and a mirrored decoder turns codes back into audio.
Quantizer dropout during training makes every prefix of the levels a codec of its own, so one model serves
0.5 ... 3.0 kbps. Here we train (or load) it, listen to it at every bitrate, and measure it against
**Codec2 at 3200 bit/s** and **Opus at 6 kbit/s** on held-out synthetic speakers and on real speech.
All logic lives in `workbench.codec`; this notebook only calls it."""),
    ("code", """from workbench.codec import demo
from workbench.codec.config import PRESETS
from workbench.codec.evaluate import evaluate, summary_table, synthetic_clips
from workbench.codec.model import count_parameters
from workbench.io import write_report

corpus = demo.corpus_for(preset, corpus_dir)
codec, meta, run = demo.train_or_load(preset, corpus, codec_dir, max_minutes, device)
cfg = codec.cfg
print(f"codec from {run}: {count_parameters(codec):,} parameters, trained {meta['step']} steps; "
      f"{cfg.frame_rate:.0f} Hz frames x {cfg.num_quantizers} levels x {cfg.codebook_size} codes "
      f"= {cfg.kbps():.1f} kbps at the full rate; causal={cfg.causal}")"""),
    ("markdown", """## Training

The codec learns from random one-second crops of the training speakers. The laptop codec's decoder predicts the
magnitude spectrum of every frame and is trained on it directly (`magnitude`: L1 of log magnitudes + spectral
convergence); Griffin-Lim recovers the phase when it decodes. The waveform decoders (`istft`, `conv`) learn from a
multi-scale log-mel loss (`mel`) and a small waveform L1, and presets that train adversarially add a multi-scale
STFT discriminator with feature matching (`adv`, `feat`, `disc`). Codebooks follow their assigned vectors by
exponential moving averages, and codes nobody uses are restarted on fresh encoder outputs."""),
    ("code", """demo.training_curve(run)"""),
    ("markdown", """## Listen: one held-out clip at every bitrate

The clip comes from a test speaker never heard in training. Each level adds 0.5 kbps; Codec2 (resampled through
8 kHz, so nothing above 4 kHz survives) and Opus run on the same clip."""),
    ("code", """clip = synthetic_clips(corpus, 1, PRESETS[preset].eval.clip_seconds)[0]
signals = demo.examples(codec, clip.audio)
print(clip.id)
demo.audio_players(signals)"""),
    ("code", """demo.spectrogram_grid(signals)"""),
    ("markdown", """## Measure: PESQ, STOI and mel distance against Codec2 and Opus

Wide-band PESQ (1.0 to 4.64) scores perceived quality, STOI (0 to 1) intelligibility, and the mel distance is the
mean absolute difference of log-mel spectrograms (0 for identical audio). The same run times encoding and
decoding. The numbers land in `codec.json` in the report folder."""),
    ("code", """payload = evaluate(codec, PRESETS[preset].eval, corpus, real_dir)
payload = {"preset": preset, "checkpoint": str(run), "trained_steps": meta["step"], **payload}
print(f"wrote {write_report('codec.json', payload, reports)}")
print(summary_table(payload))"""),
    ("code", """demo.comparison_table(payload)"""),
    ("code", """demo.comparison_plot(payload, "pesq")"""),
    ("code", """demo.comparison_plot(payload, "stoi")"""),
    ("markdown", """At the smoke preset the codec has trained for seconds and sounds like noise: that run only checks that the
pipeline works. The laptop preset's measured figures, and how far they are from Codec2, are in
`workbench/codec/README.md`."""),
]


if __name__ == "__main__":
    print("wrote", write_notebook("04_acoustic_synthesis", CELLS))
