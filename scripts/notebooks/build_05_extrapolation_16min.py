"""Notebook 05 teaches SpeechSSM's headline: models trained on seconds generate 16 minutes; Griffin with
constant memory, the Transformer as far as a CPU affords. Each stream is measured bin by bin for degeneration
(repeats, stuck units, entropy), plausibility (NLL) and, rendered to audio, coherence and speaker similarity.

Writes notebooks/05_extrapolation_16min.ipynb (no outputs). Edit this file, not the notebook, then run
`.venv/bin/python scripts/notebooks/build_all.py` (or this script).
"""

from workbench.pipeline.notebooks import write_notebook

NAME = "05_extrapolation_16min"

CELLS = [
    ("parameters", '''# Parameters (papermill overrides these).
preset = "laptop"            # smoke (seconds) | laptop (16 min of Griffin, ~15 min on 2 CPU cores) | paper | small
minutes = None               # Griffin's continuation; None: the preset's (laptop 16, smoke 0.5)
transformer_minutes = None   # the Transformer's; None: the preset's (laptop 3: it slows down with length)
prompt_seconds = None        # None: the preset's (laptop 10 s, as in the paper)
bin_seconds = None           # measures per bin; None: the preset's (laptop 30 s: two in each 1-minute stream)
seed = 0
prompts = None               # held-out recordings prompted (across voices); None: the preset's (laptop 2)
seeds = None                 # samplings per prompt; None: the preset's (laptop 2)
workers = None               # decoding processes; None: one per CPU core (one on a GPU)
runs = None                  # folder with griffin/ and transformer/; None: runs/lm/<preset> (where 03 trains)
tokens = None                # token directory; None: the one the runs trained on (or the preset's)
audio = True                 # render the continuations (acoustic stage) and measure SC-L / speaker similarity
acoustic_run = None          # SoundStorm run; None: runs/acoustic/<preset>
reports = "reports/latest"'''),
    ("markdown", """# 05 · Extrapolation: 16 minutes from a model trained on seconds

SpeechSSM's headline: trained on crops of 4 minutes, it **generates 16** -- with constant memory, and without
falling apart. Here both of our LMs were trained on short crops (10 s at the laptop preset); we prompt each with
the first seconds of the same held-out recording and let it run:

* **Griffin** for the whole length (16 minutes = 24,000 tokens at laptop), through `generate.stream` with its
  constant-size state (RG-LRU state + conv buffer + a ring buffer of its local-attention window);
* the **SpeechTransformer** only as far as is affordable on a CPU (laptop: 3 minutes): its KV cache -- and the
  cost of every step -- grows with every token. Notebook 06 measures that cost; here we look at *what it says*
  beyond its training window.

Then we measure each stream bin by bin (`workbench.eval.longform`): long-form generation typically fails by
**degenerating** -- falling into a loop of the same few units, or sticking on one unit (endless silence) -- which
the repeat rate, distinct-n, unit entropy, longest run and stuck share detect; the NLL under the Griffin LM says how plausible
the stream is (loops are plausible: read it beside the repeat rate). The held-out recording's **real
continuation** is measured the same way: it is what healthy looks like. All logic lives in `workbench.pipeline.extrapolate`.

One prompt and one seed are a sample, not a statistic: the same model can collapse in one run and not in the
next. So the job runs a **set** -- held-out recordings of several voices as prompts, times several seeds (laptop:
2 x 2; the first stream runs the full 16 minutes, the others 1, in 30 s bins so each has a slope) -- and every figure below draws each model's
mean over the set with its 95% band, the individual streams faint behind it. The claims are stated as tests over
the set: is each measure's slope per minute flat (its interval holds 0) or drifting, and what share of streams
loop or collapse (with its interval)."""),
    ("code", """from pathlib import Path

from workbench.core.io import write_report
from workbench.pipeline import extrapolate as X

cfg = X.extrapolation_config(preset, minutes=minutes, transformer_minutes=transformer_minutes,
                             prompt_seconds=prompt_seconds, bin_seconds=bin_seconds, seed=seed, prompts=prompts,
                             seeds=seeds, workers=workers)
payload, streams = X.run_extrapolation(preset, cfg, runs=runs, tokens=tokens, audio=audio, acoustic_run=acoustic_run,
                                      reports=reports, progress=False)
payload["streams"] = str(X.save_streams(Path(reports) / "extrapolation-tokens.npz", streams))
print("wrote", write_report("extrapolation.json", payload, reports))
if payload["synthetic_tokens"]:
    print("NOTE: SYNTHETIC tokens (no tokenizer output was found): a hidden-topic Markov process, not speech.")
print(X.summary(payload))"""),
    ("markdown", """## Does the stream degenerate?

**Repeat rate**: the fraction of each bin's (deduplicated) 4-unit sequences already heard in the 10 seconds
before. A loop drives it to 1; real speech repeats the odd word. Right of the dashed line the stream (prompt
included) is longer than anything the models were trained on."""),
    ("code", """X.measure_figure(payload, "repeat_rate", "Repeat rate per bin (1 = a loop)", "repeat rate").show()"""),
    ("markdown", """**Stuck share**: the share of each bin held on single units for more than a second each. A stream can
collapse onto a few held units without looping (the repeat rate stays low); real speech stays near 0."""),
    ("code", """X.measure_figure(payload, "stuck_share", "Stuck share per bin (runs of one unit > 1 s)", "share of the bin").show()"""),
    ("code", """X.measure_figure(payload, "entropy_bits", "Unit entropy per bin (0 = one unit; a loop: log2 of its period)",
                  "bits").show()"""),
    ("code", """X.measure_figure(payload, "distinct_n", "Distinct 4-grams per bin (deduplicated units)", "distinct fraction").show()
X.measure_figure(payload, "longest_run_s", "Longest run of one unit per bin (a stuck unit: the whole bin)", "seconds").show()"""),
    ("markdown", """## How plausible is it? NLL under the Griffin LM

The paper scores transcripts with a text LM; we have tokens, so we score them with our own speech-token LM (the
Griffin run). Griffin scores its own samples at roughly its entropy; the real continuation sets the level a
well-trained model would reach."""),
    ("code", """X.measure_figure(payload, "nll", "NLL per token under the Griffin LM, per bin", "nats / token").show()"""),
    ("markdown", """## Memory and speed while generating

Griffin's decode state has the same size after 10 seconds and after 16 minutes; the Transformer's KV cache grows by
one slot per token (and with it the cost of each step: see notebook 06 for the full measurements)."""),
    ("code", """X.cache_figure(payload).show()
X.speed_figure(payload).show()"""),
    ("markdown", """## The units themselves, at the end of each continuation"""),
    ("code", """X.tokens_figure(payload).show()"""),
    ("markdown", """Step through the minutes of the first stream of each model (in JupyterLab: move the slider; in a headless run
the first and the last minute are shown)."""),
    ("code", """first = {n: s for n, s in streams.items() if n in ("griffin", "transformer", "ground_truth")}
explorer = X.minute_explorer(first, payload["prompt"]["tokens"])
if explorer is not None:
    display(explorer)
for minute in sorted({0, X.last_minute(first, payload["prompt"]["tokens"])}):
    X.minute_figure(first, payload["prompt"]["tokens"], minute).show()"""),
    ("markdown", """## Audio: semantic coherence (SC-L), speaker similarity and naturalness over time

SC-L: each bin's ASR transcript (pocketsphinx) embedded with MiniLM, cosine to the prompt's transcript. Its
**floor** is measured in the same run: passages of *other* held-out recordings (other texts), each as long as a
bin, scored the same way -- a continuation's SC-L says something about its meaning only above that band.
Speaker similarity: resemblyzer cosine of each bin to the prompt. Naturalness: DNSMOS P.835 OVRL per bin, an
offline MOS predictor standing in for the paper's human N-MOS-T (**a proxy**: it hears a vocoder's buzz, not
whether the words make sense). The continuations are rendered by the acoustic stage (SoundStorm + codec) in the
prompt's voice -- the first minutes of each, and the last minute of Griffin's 16 -- and measured beside the real
continuation, the ceiling. Where that cannot run (no trained acoustic model, tokens of another tokenizer) the
reason is printed and only the ground truth is measured."""),
    ("code", """for name, entry in payload["audio"].items():
    print(f"{name}: {entry['status']}" + (f" -- {entry['reason']}" if entry.get("reason") else ""))
    for b in entry.get("sc_l") or []:
        print(f"   {b['from_s']:.0f}-{b['to_s']:.0f}s  SC-L {b['similarity'].get('prompt')}  heard: {b['transcript'][:70]!r}")
floor = payload.get("sc_l_floor") or {}
print("SC-L floor:", floor.get("status"), floor.get("reason") or f"{floor.get('mean')} (n={floor.get('n')})")
print("LLM judge:", payload["llm_judge"]["status"], "--", payload["llm_judge"]["reason"])
if any(e.get("status") == "ok" for e in payload["audio"].values()):
    X.audio_figure(payload).show()"""),
    ("markdown", """Over the whole set: every stream rendered in its own prompt's voice (its first minutes), the mean with its
95% band and each stream faintly behind it; the real continuations are the ceiling."""),
    ("code", """streams_of = (payload.get("set") or {}).get("streams", {})
for field, key, title, yaxis in (
        ("speaker_similarity", "similarity", "Speaker similarity to the prompt, over the set", "cosine"),
        ("naturalness", "ovrl", "Naturalness proxy (DNSMOS OVRL, not human N-MOS-T), over the set", "MOS 1-5")):
    if any(s.get(field) for ss in streams_of.values() for s in ss):
        X.measure_figure(payload, key, title, yaxis, field=field).show()
    else:
        print(f"no {field.replace('_', ' ')} over the set in this run (no rendered audio)")"""),
    ("code", """from IPython.display import display

from workbench.core.audio import load_audio
from workbench.core.plots import audio_player

for name, entry in payload["audio"].items():
    if name != "ground_truth" and entry.get("status") == "ok":
        print(f"{name}: {entry['seconds']:.0f} s from minute {entry['offset_s'] / 60:.1f}")
        display(audio_player(load_audio(entry["audio"])))"""),
]

if __name__ == "__main__":
    print("wrote", write_notebook(NAME, CELLS))
