"""Notebook 03 teaches SpeechSSM's central claim: a Griffin speech LM and a parameter-matched SpeechTransformer
are trained on the same short windows, then scored on whole held-out recordings far beyond them -- the
recurrent model's per-position loss stays flat, the Transformer's degrades.

Writes notebooks/03_griffin_training.ipynb (no outputs). Edit this file, not the notebook, then run
`.venv/bin/python scripts/notebooks/build_all.py` (or this script).
"""

from workbench.pipeline.notebooks import write_notebook

NAME = "03_griffin_training"

CELLS = [
    ("parameters", """# Parameters (papermill overrides these).
preset = "laptop"          # smoke | laptop | paper (and the extra small)
models = ["griffin", "transformer"]
window = None              # training crop: tokens (250) or seconds ("10s"); None: preset default
steps = None               # None: preset default
max_minutes = None         # wall-clock budget per model; None: preset default (laptop: 5 min)
tokens = None              # token dir; None: tokenizer output if it exists, else SYNTHETIC tokens
eval_seconds = 120.0       # score held-out recordings up to this long (None: whole recordings)
eval_recordings = 4
bin_seconds = 30.0
sample_seconds = 10.0
runs = None                # folder for griffin/ and transformer/; None: runs/lm/<preset>
probes = True              # score the zero-shot probes and the learning curves (speech tokens only)
probe_items = None         # folder of probe sets; None: data/build/probes/<preset>/short (built there if missing)
probe_tokenizer = None     # the LMs' tokenizer; None: runs/tokenizer/<preset>/<kind named by the tokens>
probe_pairs = 100          # pairs per set scored at each point of the curves (None: all)
reports = "reports/latest"
seed = 0"""),
    ("markdown", """# 03 · Griffin vs Transformer on long-form token streams

We train the Griffin speech LM (recurrent, recurrent, local attention, ...) and a parameter-matched
SpeechTransformer (global attention everywhere) on the **same short windows**, then score whole held-out
recordings **far beyond** that window. SpeechSSM's claim: the recurrent model extrapolates -- its per-position
loss stays flat for minutes -- while the Transformer, past the positions it was trained on, degrades.
All logic lives in `workbench.lm`; this notebook only calls it and plots."""),
    ("code", """from pathlib import Path

from workbench.core.config import override
from workbench.core.io import write_report
from workbench.core.paths import lm_run_dir
from workbench.lm import notebook as show
from workbench.lm.config import TOKENS_PER_SECOND, train_config
from workbench.lm.data import TokenCorpus, parse_window, resolve_tokens
from workbench.lm.evaluate import evaluate_runs, held_out_tokens
from workbench.lm.generate import generate
from workbench.lm.model import load_model, model_config
from workbench.lm.train import train_or_reuse

token_dir = resolve_tokens(tokens, preset)
corpus = TokenCorpus(token_dir)
if corpus.synthetic:
    print(f"NOTE: no tokenizer output was found, so these are SYNTHETIC tokens ({token_dir}): a hidden-topic "
          "Markov process with minute-long structure. They are not speech; the numbers below say how the models "
          "handle long-range structure, not how well they model speech.")
else:
    print(f"semantic speech tokens from {token_dir}")
print(f"{len(corpus.split('train'))} training recordings, held-out split '{corpus.held_out_split()}'")"""),
    ("code", """changes = {k: v for k, v in {"steps": steps, "max_minutes": max_minutes, "seed": seed}.items() if v is not None}
if window is not None:
    changes["window_tokens"] = parse_window(window)
tcfg = override(train_config(preset), **changes)
run_dirs, summaries = {}, {}
for name in models:
    mcfg = model_config(preset, name)
    run_dirs[name] = Path(runs) / name if runs else lm_run_dir(preset, name)
    # a finished run with exactly these settings is reused; anything else is trained afresh
    summaries[name] = train_or_reuse(run_dirs[name], mcfg, tcfg, token_dir, preset=preset, progress=False)
    print(show.run_line(name, summaries[name]))"""),
    ("code", """show.training_figure(run_dirs).show()"""),
    ("markdown", """## Extrapolation: NLL by position in whole held-out recordings

Both models read each recording from its first token as one stream (chunked, carrying their caches). The dashed
line marks the training window."""),
    ("code", """payload, curves = evaluate_runs(run_dirs, token_dir, max_seconds=eval_seconds, max_recordings=eval_recordings,
                                bin_seconds=bin_seconds)
print("wrote", write_report("lm.json", payload, reports))
show.position_figure(curves, tcfg.window_tokens, payload["held_out"]["recordings"]).show()
for line in show.extrapolation_lines(payload):
    print(line)"""),
    ("markdown", """## Did they learn language? Zero-shot probes while they train

The field measures spoken LMs with pairs of spoken items where the real one should be the more likely (chance
0.5): a word against a non-word (**lexical**, like sWUGGY), a sentence against a minimally broken one
(**syntactic**, like sBLIMP), a story's true next sentence against another chapter's (**story**, like spoken
StoryCloze), and the same with prefixes of 10 s to 8 minutes (**long-context story**: does the model use, and keep,
context far beyond its training window?). The items are synthesized here from held-out chapters, read only by
held-out voices and one voice no model heard (`workbench.data.probes`, `python -m workbench lm probes`). Each LM
scores both members after their shared prefix (mean log-likelihood per token); the curves follow each model's
learning-curve snapshots (at the laptop preset a third, two thirds and all of its training), with 95% Wilson
bands, on the short sets (`probe_pairs` of each). The
long-context sets (minutes of audio per item: ~13 minutes to build and score at laptop) are their own study:
`python -m workbench lm probes --preset laptop` -> `probes.json`."""),
    ("code", """from workbench.pipeline import probes as P

if corpus.synthetic:
    print("no probes: these SYNTHETIC tokens are not speech (the probes are spoken items, tokenized by the "
          "tokenizer the LMs were trained on)")
elif not probes:
    print("probes skipped (probes=False)")
else:
    curves = P.learning_curves(preset, runs=list(run_dirs.values()), items=probe_items, tokenizer=probe_tokenizer,
                               max_pairs=probe_pairs, progress=False)
    print("wrote", write_report("probe_curves.json", curves, reports))
    for model, points in curves["models"].items():
        final = points[-1]["sets"]
        print(f"{model} finished: " + "  ".join(f"{k} {a['share']:.2f} [{a['low']:.2f}, {a['high']:.2f}]"
                                               for k, a in final.items()))
    P.curve_figure(curves).show()"""),
    ("markdown", """## A continuation

Griffin prefills a held-out prompt in parallel, then decodes token by token with a constant-size state. These
are tokens; the acoustic stage (notebook 04) turns semantic tokens into audio."""),
    ("code", """model, meta = load_model(run_dirs[models[0]])
prompt = held_out_tokens(corpus, max_seconds=4.0, max_recordings=1)
out = generate(model, prompt, int(sample_seconds * TOKENS_PER_SECOND), temperature=1.0, top_p=0.95, seed=seed)
print(f"{models[0]} prompt ({prompt.shape[1]} tokens):", prompt[0, -20:].tolist())
print(f"continuation ({out.shape[1] - prompt.shape[1]} tokens):", out[0, prompt.shape[1]:prompt.shape[1] + 60].tolist(), "...")"""),
]

if __name__ == "__main__":
    print("wrote", write_notebook(NAME, CELLS))
