"""Notebook 04 teaches the acoustic stage: the workbench's own neural audio codec (residual vector quantization,
0.5 to 3 kbps, measured against Codec2 and Opus), then SoundStorm, which turns semantic tokens and a 3 s
speaker prompt into that codec's tokens, level by level.

Writes notebooks/04_acoustic_synthesis.ipynb (no outputs). Edit this file, not the notebook, then run
`.venv/bin/python scripts/notebooks/build_all.py` (or this script).
"""

from workbench.pipeline.notebooks import write_notebook

NAME = "04_acoustic_synthesis"

CELLS = [
    ("parameters", """# Parameters (papermill overrides these).
preset = "smoke"                        # smoke | laptop | paper
corpus_dir = None                       # None: data/build/<preset> (built if missing)
codec_dir = None                        # None: runs/codec/<preset> (trained if it holds no codec)
max_minutes = None                      # training budget if the codec must be trained; None: the preset's
real_dir = "../shared/data/real-speech"  # real human speech for the comparison (skipped if absent)
reports = "reports/latest"
device = None                           # None: cuda when available
tokenizer_dir = None                    # None: runs/tokenizer/<preset>/learned (trained if missing)
acoustic_dir = None                     # None: runs/acoustic/<preset> (SoundStorm; trained on this codec if missing)
acoustic_minutes = None                 # SoundStorm training budget if it must be trained; None: the preset's
acoustic_clips = None                   # None: the preset's number of evaluation clips"""),
    ("markdown", """# 04 · Acoustic synthesis: the neural audio codec

SpeechSSM's acoustic stage ends in SoundStream codec tokens that a decoder turns into a waveform. SoundStream's
weights are closed, so the workbench trains its own codec of the same family: a convolutional encoder maps
16 kHz audio to 50 latent vectors per second, **residual vector quantization** turns each into up to six
10-bit codes (0.5 kbps per level, 3.0 kbps with all six), and a mirrored decoder turns codes back into audio.
Quantizer dropout during training makes every prefix of the levels a codec of its own, so one model serves
0.5 ... 3.0 kbps. Here we train (or load) it, listen to it at every bitrate, and measure it against
**Codec2 at 3200 bit/s** and **Opus at 6 kbit/s** on held-out synthetic speakers and on real speech.
All logic lives in `workbench.codec`; this notebook only calls it."""),
    ("code", """from workbench.codec import notebook as demo
from workbench.codec.config import PRESETS
from workbench.codec.evaluate import corpus_clips, evaluate, summary_table
from workbench.codec.model import count_parameters
from workbench.core.io import write_report

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
exponential moving averages, and codes nobody uses are restarted on fresh encoder outputs.

Training quantizes greedily, level by level. To *encode*, the codec searches: it keeps the 16 best partial sums
of codes at every level and sends the codes whose sum lies nearest the encoder's output (`rvq_beam`). Same bits,
same decoder; on held-out real voices it is worth +0.07 PESQ-WB over greedy coding (`workbench/codec/README.md`)."""),
    ("code", """demo.training_curve(run)"""),
    ("markdown", """## Listen: one held-out clip at every bitrate

The clip comes from a test speaker never heard in training. Each level adds 0.5 kbps; Codec2 (resampled through
8 kHz, so nothing above 4 kHz survives) and Opus run on the same clip."""),
    ("code", """clip = corpus_clips(corpus, 1, PRESETS[preset].eval.clip_seconds)[0]
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
    # the second half of the acoustic stage: SoundStorm, on top of the codec above
    ("markdown", """# SoundStorm: semantic tokens + a 3 s speaker prompt -> codec tokens

SpeechSSM separates *what is said* (speaker-invariant semantic tokens, 25 per second) from *who says it*. A
non-autoregressive **SoundStorm** model turns semantic tokens into the codec's tokens in the voice of a short
speaker prompt. It is a bidirectional Conformer over codec frames: each frame's input is the sum of its
semantic-token embedding (repeated to the codec's 50 Hz) and one embedding per RVQ level (a mask embedding
where the level is not known yet); one output head per level.

Training (SoundStorm): pick a level q, mask a cosine-scheduled fraction of its tokens and every token of the
finer levels, keep the coarser levels and a random prefix (the acoustic prompt), and predict the masked level-q
tokens. Decoding mirrors it: level by level, coarse to fine, with several confidence-based iterations on the
first level and one greedy pass on each finer one. Long streams are cut into overlapping windows; each window
sees the prompt and the codes its predecessor already fixed in the overlap. Logic: `workbench.acoustic`."""),
    ("code", """from workbench.acoustic import notebook as storm
from workbench.acoustic.config import PRESETS as ACOUSTIC_PRESETS
from workbench.acoustic.decode import DecodeTrace
from workbench.acoustic.evaluate import eval_clips, evaluate, summary_text
from workbench.codec.notebook import audio_players
from workbench.codec.stream import reconstruct
from workbench.core.config import override

synth = storm.train_or_load(preset, corpus, run, tokenizer_dir, acoustic_dir, None, acoustic_minutes, device)
m = synth.model.cfg
print(f"SoundStorm: {synth.meta['parameters']:,} parameters ({m.layers} Conformer blocks, d {m.dim}, {m.heads} heads), "
      f"trained {synth.meta['step']} steps on {m.num_levels} levels x {m.codebook_size} codes; "
      f"semantic vocabulary {m.semantic_vocab}; decoding iterations {list(synth.decode.iterations(synth.levels))}")"""),
    ("code", """storm.training_curve(synth.run_dir)"""),
    ("markdown", """## A held-out speaker: the prompt and the semantic tokens

The clip and both prompts come from the test speakers, who are never heard in training. The prompt is
another stretch of the same speaker; a second prompt comes from the other held-out speaker."""),
    ("code", """clip = eval_clips(corpus, 1, ACOUSTIC_PRESETS[preset].eval.clip_seconds, synth.decode.prompt_seconds)[0]
semantic = synth.semantic_tokens(clip.audio)
prompt = synth.prompt(clip.prompt)
print(f"{clip.id} ({clip.speaker}): {clip.text!r}")
print(f"{len(semantic)} semantic tokens; prompt of {prompt.frames} codec frames; other voice: {clip.other_speaker}")
storm.prompt_and_tokens_figure(clip.prompt, semantic, synth.rates.semantic_rate)"""),
    ("markdown", """## Decoding, level by level

Each row is one forward pass of the model; colour is how many RVQ levels are decided at each frame of the first
window after that pass. The prompt's frames are given from the start. Level 0 is filled in over its iterations,
the most confident frames first (the rest are re-masked and predicted again with more context); then each finer
level is filled in by one greedy pass that reads the levels below it and never the ones above."""),
    ("code", """trace = DecodeTrace()
codes = synth.synthesize_codes([semantic], [prompt], seed=0, trace=trace)[0]
storm.decoding_figure(trace, prompt.frames, synth.levels, frame_rate=synth.rates.codec_rate)"""),
    ("markdown", """## Listen: resynthesis in the prompt's voice and in another voice

The same semantic tokens, synthesized once with the clip's own speaker as prompt and once with the other held-out
speaker as prompt; beside them the original and the codec's own reconstruction (the ceiling SoundStorm can reach
through this codec)."""),
    ("code", """n = len(clip.audio)
own = synth.audio(codes)[:n]
other = synth.synthesize(semantic, synth.prompt(clip.other_prompt), seed=0)[:n]
audio_players({"original": clip.audio, "codec reconstruction": reconstruct(synth.codec, clip.audio),
               f"prompt ({clip.speaker})": clip.prompt, f"SoundStorm, prompt {clip.speaker}": own,
               f"other prompt ({clip.other_speaker})": clip.other_prompt,
               f"SoundStorm, prompt {clip.other_speaker}": other})"""),
    ("markdown", """### Explore: any held-out clip, either voice, any bitrate

In JupyterLab, pick a clip, the prompt's voice (the clip's own speaker or the other held-out one), the codec's
number of levels and a seed, then press *synthesize*: the original, the codec's reconstruction at that bitrate,
the prompt and SoundStorm's resynthesis play side by side. (Under papermill nothing is drawn here; the players
above stand in.)"""),
    ("code", """from IPython.display import display

explorer = storm.synthesis_explorer(synth, eval_clips(corpus, 4, ACOUSTIC_PRESETS[preset].eval.clip_seconds,
                                                      synth.decode.prompt_seconds))
if explorer is not None:
    display(explorer)"""),
    ("markdown", """## Listening page: four held-out clips, side by side

Each row is one held-out clip (synthetic and, where the corpus mixes it in, real speakers): the original, the
codec's reconstruction, SoundStorm's resynthesis of the clip's semantic tokens with a prompt of its own speaker,
and with the prompt of another held-out speaker. If the prompt chose the voice, the last column would sound like
the other speaker and say the same words; `acoustic eval` below measures how far it does."""),
    ("code", """listening = storm.listening_rows(synth, eval_clips(corpus, 4, ACOUSTIC_PRESETS[preset].eval.clip_seconds,
                                                      synth.decode.prompt_seconds))
storm.listening_page(listening)"""),
    ("markdown", """## Measure: does the prompt control the voice, and are the words kept?

Speaker similarity (resemblyzer d-vectors, cosine) of the resynthesis to its prompt and to the other held-out
speaker; word error rate of pocketsphinx transcripts against the text; the same for the codec's reconstruction
and the original audio as ceilings; synthesis speed. The numbers land in `acoustic.json`."""),
    ("code", """cfg = ACOUSTIC_PRESETS[preset].eval
cfg = override(cfg, clips=acoustic_clips) if acoustic_clips else cfg
scores = {"preset": preset, **evaluate(synth, cfg, corpus, progress=False)}
print(f"wrote {write_report('acoustic.json', scores, reports)}")
print(summary_text(scores))
storm.summary_table(scores)"""),
    ("markdown", """At the smoke preset SoundStorm has trained for seconds on a codec that has trained for seconds: the figures
only show that the pipeline runs. The laptop preset's measured figures are in `workbench/acoustic/README.md`.

Where the words go at the laptop preset (that README, "Perfect phones instead of the units"): trained on the
corpus's exact phone labels instead of the semantic units, SoundStorm says as few words, while a plain table of
each unit's mean codec latent over the training speakers says more. The units carry the words; predicting and
sampling six levels of discrete codes after a few minutes of training loses them. A model trained with
`--latent-head --latent-prior` and decoded with `--regress-levels 6` speaks that table: more words, an average
voice."""),
]

if __name__ == "__main__":
    print("wrote", write_notebook(NAME, CELLS))
