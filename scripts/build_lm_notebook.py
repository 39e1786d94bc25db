"""Write notebooks/03_griffin_training.ipynb (no outputs). Run: python scripts/build_lm_notebook.py"""

from workbench.notebooks import write_notebook

CELLS = [
    ("code", """# Parameters (papermill overrides these).
preset = "laptop"          # smoke | laptop | small | paper-2b
models = ["griffin", "transformer"]
window = None              # training crop: tokens (250) or seconds ("10s"); None: preset default
steps = None               # None: preset default
max_minutes = None         # wall-clock budget per model; None: preset default (laptop: 5 min)
tokens = None              # token dir; None: tokenizer output if it exists, else SYNTHETIC tokens
eval_seconds = 120.0       # score held-out recordings up to this long (None: whole recordings)
eval_recordings = 4
bin_seconds = 30.0
sample_seconds = 10.0
runs = "runs/lm/notebook"
reports = "reports/latest"
seed = 0""", {"tags": ["parameters"]}),
    ("markdown", """# 03 · Griffin vs Transformer on long-form token streams

We train the Griffin speech LM (recurrent, recurrent, local attention, ...) and a parameter-matched
SpeechTransformer (global attention everywhere) on the **same short windows**, then score whole held-out
recordings **far beyond** that window. SpeechSSM's claim: the recurrent model extrapolates -- its per-position
loss stays flat for minutes -- while the Transformer, past the positions it was trained on, degrades.
All logic lives in `workbench.lm`; this notebook only calls it and plots."""),
    ("code", """import shutil
from pathlib import Path

import plotly.graph_objects as go

from workbench.config import override
from workbench.io import write_report
from workbench.lm.config import TOKENS_PER_SECOND, model_config, train_config
from workbench.lm.data import TokenCorpus, parse_window, resolve_tokens
from workbench.lm.evaluate import evaluate_runs, held_out_tokens, per_second
from workbench.lm.generate import generate
from workbench.lm.model import count_parameters
from workbench.lm.train import load_model, read_metrics, train

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
    run_dirs[name] = Path(runs) / f"{preset}-{name}"
    shutil.rmtree(run_dirs[name], ignore_errors=True)  # the notebook always trains afresh
    summaries[name] = train(run_dirs[name], mcfg, tcfg, token_dir, preset=preset, progress=False)
    s = summaries[name]
    print(f"{name}: {s['parameters']:,} parameters, {s['steps']} steps ({s['stopped_by']}) in {s['elapsed_s']:.0f}s, "
          f"window {s['window_seconds']:.0f}s: train loss {s['train_loss']:.3f}, eval loss {s['eval_loss']:.3f}")"""),
    ("code", """fig = go.Figure()
for name, run in run_dirs.items():
    metrics = read_metrics(run)
    train_pts = [m for m in metrics if "loss" in m]
    eval_pts = [m for m in metrics if "eval_loss" in m]
    fig.add_scatter(x=[m["step"] for m in train_pts], y=[m["loss"] for m in train_pts], name=f"{name} train")
    fig.add_scatter(x=[m["step"] for m in eval_pts], y=[m["eval_loss"] for m in eval_pts], name=f"{name} held-out",
                    mode="markers+lines")
fig.update_layout(title="Training loss (NLL per token, nats)", xaxis_title="step", yaxis_title="NLL")
fig.show()"""),
    ("markdown", """## Extrapolation: NLL by position in whole held-out recordings

Both models read each recording from its first token as one stream (chunked, carrying their caches). The dashed
line marks the training window."""),
    ("code", """payload, curves = evaluate_runs(run_dirs, token_dir, max_seconds=eval_seconds, max_recordings=eval_recordings,
                                bin_seconds=bin_seconds)
print("wrote", write_report("lm.json", payload, reports))
fig = go.Figure()
for name, curve in curves.items():
    t, nll = per_second(curve)
    fig.add_scatter(x=t, y=nll, name=name)
fig.add_vline(x=tcfg.window_tokens / TOKENS_PER_SECOND, line_dash="dash", annotation_text="training window")
fig.update_layout(title=f"Per-position NLL, {payload['held_out']['recordings']} held-out recordings",
                  xaxis_title="seconds into the recording", yaxis_title="NLL (1 s means)")
fig.show()
for name, m in payload["models"].items():
    print(f"{name}: within the training window {m['nll_within_train_window']:.3f}, beyond it "
          f"{m['nll_beyond_train_window']:.3f} (x{m['extrapolation_factor']} the window)")
    print("   " + "  ".join(f"{b['from_s']:.0f}-{b['to_s']:.0f}s: {b['nll']:.3f}" for b in m["nll_by_time"]))"""),
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
    print("wrote", write_notebook("03_griffin_training", CELLS))
