"""`python -m workbench lm {train,eval,info,sample}`: the speech LM from the command line.

    lm train --preset laptop --model griffin [--tokens DIR] [--out DIR] [--resume] [--window 10s] ...
             [--parallel ddp|fsdp] [--activation-checkpointing] [--compile]
    lm eval  --preset laptop [--runs GRIFFIN_RUN TRANSFORMER_RUN] --json     -> lm.json in the report folder
    lm info  --preset paper --json                                      parameter counts (meta device)
    lm sample --run DIR --prompt-seconds 4 --seconds 20                     a continuation of a held-out prompt

Runs live in runs/lm/<preset>/<model> (`workbench.core.paths`). The 16-minute comparison spans the stages:
`python -m workbench extrapolate` (`workbench.pipeline.extrapolate`).

Also runs standalone (`python -m workbench.lm.cli ...`), which is how `torchrun` launches data-parallel
training: `torchrun --nproc_per_node 2 -m workbench.lm.cli train ...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.core.cli import add_output_args, emit
from workbench.core.config import PRECISIONS
from workbench.core.errors import UserError
from workbench.core.paths import lm_run_dir


def _configs(args):
    from workbench.core.config import override
    from workbench.lm.config import train_config
    from workbench.lm.data import parse_window
    from workbench.lm.model import model_config

    try:
        mcfg = model_config(args.preset, args.model)
        if getattr(args, "vocab_size", None):
            mcfg = override(mcfg, vocab_size=args.vocab_size)
    except ValueError as err:
        raise UserError(str(err)) from None
    tcfg = train_config(args.preset)
    changes = {k: v for k, v in {"steps": args.steps, "max_minutes": args.max_minutes, "batch_size": args.batch_size,
                                 "micro_batch": args.micro_batch, "lr": args.lr, "seed": args.seed,
                                 "precision": args.precision, "parallel": getattr(args, "parallel", None),
                                 "activation_checkpointing": getattr(args, "activation_checkpointing", None),
                                 "compile": getattr(args, "compile", None),
                                 "snapshots": getattr(args, "snapshots", None)}.items() if v is not None}
    if args.window is not None:
        changes["window_tokens"] = parse_window(args.window)
    try:
        return mcfg, override(tcfg, **changes)
    except ValueError as err:
        raise UserError(str(err)) from None


def cmd_train(args) -> None:
    from workbench.core.device import finish_distributed
    from workbench.lm.data import resolve_tokens
    from workbench.lm.train import train

    mcfg, tcfg = _configs(args)
    tokens = resolve_tokens(args.tokens, args.preset)
    out = Path(args.out) if args.out else lm_run_dir(args.preset, args.model)
    try:
        summary = train(out, mcfg, tcfg, tokens, resume=args.resume, device=args.device, preset=args.preset,
                        tensorboard=args.tensorboard)
    except BaseException:
        finish_distributed(synchronize=False)
        raise
    finish_distributed()  # leave torchrun's process group once every rank is done (a no-op in one process)
    if summary:  # rank 0 only under torchrun
        emit(args, summary, lambda s: (f"{s['model']} ({s['parameters']:,} params) {s['steps']} steps in "
                                       f"{s['elapsed_s']:.0f}s: train loss {s['train_loss']:.3f}, eval loss "
                                       f"{s['eval_loss']:.3f} -> {s['run']}"))


def cmd_eval(args) -> None:
    from workbench.core import validate
    from workbench.lm.evaluate import evaluate_runs
    from workbench.lm.model import checkpoint_meta

    validate.seconds("--max-seconds", args.max_seconds, optional=True)
    validate.count("--max-recordings", args.max_recordings, 1, optional=True)
    validate.seconds("--bin-seconds", args.bin_seconds)
    runs = args.runs or [str(lm_run_dir(args.preset, m)) for m in ("griffin", "transformer")]
    metas = {run: checkpoint_meta(run) for run in runs}
    named = {}
    for run, meta in metas.items():
        name = meta["model"] if meta["model"] not in named else f"{meta['model']}-{len(named)}"
        named[name] = run
    tokens = args.tokens or metas[runs[0]]["tokens"]
    payload, _ = evaluate_runs(named, tokens, max_seconds=args.max_seconds, max_recordings=args.max_recordings,
                               bin_seconds=args.bin_seconds, device=args.device)

    def human(p):
        lines = [f"held-out: {p['held_out']['recordings']} recordings x {p['held_out']['seconds']:.0f}s"
                 + (" (SYNTHETIC tokens)" if p["synthetic_tokens"] else "")]
        for name, m in p["models"].items():
            bins = "  ".join(f"{b['from_s']:.0f}-{b['to_s']:.0f}s {b['nll']:.3f}" for b in m["nll_by_time"])
            lines.append(f"{name} (trained on {m['train_window_s']:.0f}s): {bins}")
        return "\n".join(lines)

    emit(args, payload, human, report_name="lm.json")


def cmd_info(args) -> None:
    from workbench.lm.config import MODELS
    from workbench.lm.model import count_parameters, model_config

    payload = {"preset": args.preset, "models": {}}
    for name in MODELS:
        cfg = model_config(args.preset, name)
        payload["models"][name] = {"config": cfg.to_dict(), "parameters": count_parameters(cfg)}
    emit(args, payload, lambda p: "\n".join(
        f"{n}: {m['parameters']['total']:,} parameters ({m['config']['num_layers']} layers, width "
        f"{m['config']['width']}); embedding {m['parameters']['embedding']:,}, recurrent "
        f"{m['parameters']['recurrent']:,}, attention {m['parameters']['attention']:,}, mlp {m['parameters']['mlp']:,}"
        for n, m in p["models"].items()))


def cmd_sample(args) -> None:
    import numpy as np

    from workbench.core import validate
    from workbench.core.device import pick_device
    from workbench.core.io import atomic_path
    from workbench.lm.config import TOKENS_PER_SECOND
    from workbench.lm.data import TokenCorpus
    from workbench.lm.evaluate import held_out_tokens
    from workbench.lm.generate import check_sampling, generate
    from workbench.lm.model import load_model

    # every argument is checked before the model is loaded
    validate.number("--prompt-seconds", args.prompt_seconds, 1 / TOKENS_PER_SECOND, validate.MAX_SAMPLE_SECONDS)
    validate.number("--seconds", args.seconds, 1 / TOKENS_PER_SECOND, validate.MAX_SAMPLE_SECONDS)
    validate.batch(args.batch)
    check_sampling(args.temperature, args.top_k, args.top_p, args.seed, prefix="--")
    path = validate.output_file("--out", args.out or Path(args.run) / "samples.npy", (".npy",))
    model, meta = load_model(args.run, pick_device(args.device))
    corpus = TokenCorpus(args.tokens or meta["tokens"])
    prompt = held_out_tokens(corpus, args.prompt_seconds, max_recordings=args.batch)
    out = generate(model, prompt, int(args.seconds * TOKENS_PER_SECOND), temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, seed=args.seed, num_units=corpus.num_units,
                   progress=not args.json).cpu().numpy()
    with atomic_path(path) as tmp:
        np.save(tmp, out)
    emit(args, {"run": args.run, "samples": str(path), "shape": list(out.shape), "prompt_tokens": prompt.shape[1]},
         lambda p: f"wrote {p['shape'][0]} continuations of {p['shape'][1]} tokens to {p['samples']}")


def register(subparsers) -> None:
    from workbench.lm.config import MODELS, PRESETS

    lm = subparsers.add_parser("lm", help="the Griffin speech LM and the SpeechTransformer baseline")
    sub = lm.add_subparsers(dest="lm_command", required=True)

    p = sub.add_parser("train", help="train one model on long-form token streams")
    p.add_argument("--preset", default="laptop", choices=PRESETS)
    p.add_argument("--model", default="griffin", choices=MODELS)
    p.add_argument("--tokens", default=None, help="token directory (manifest.jsonl); default: the tokenizer's "
                   "output if present, else a SYNTHETIC hidden-topic corpus")
    p.add_argument("--out", default=None, help="run directory (default runs/lm/<preset>/<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--window", default=None, help="training crop: tokens (750) or seconds (30s)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock training budget")
    p.add_argument("--batch-size", type=int, default=None, help="global batch (rows)")
    p.add_argument("--micro-batch", type=int, default=None, help="rows per forward pass (gradient accumulation)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--snapshots", type=int, default=None, help="learning-curve points: weights kept at 1/N, 2/N, ... "
                   "of the run for `lm probes --curves` (default: the preset's)")
    p.add_argument("--precision", default=None, choices=PRECISIONS)
    p.add_argument("--vocab-size", type=int, default=None, help="the tokenizer's codebook size")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard (optional package)")
    p.add_argument("--parallel", default=None, choices=("ddp", "fsdp"), help="under torchrun: replicate the "
                   "model (ddp) or shard it per residual block with FSDP2 (fsdp); default: the preset's")
    p.add_argument("--activation-checkpointing", default=None, action=argparse.BooleanOptionalAction,
                   help="recompute each residual block in the backward pass (default: the preset's)")
    p.add_argument("--compile", default=None, action=argparse.BooleanOptionalAction,
                   help="torch.compile each residual block (default: off)")
    add_output_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="per-position NLL far beyond the training window, both models (lm.json)")
    p.add_argument("--preset", default="laptop", choices=PRESETS)
    p.add_argument("--runs", nargs="+", default=None, help="run directories (default: the preset's two runs)")
    p.add_argument("--tokens", default=None, help="token directory (default: the one the first run trained on)")
    p.add_argument("--max-seconds", type=float, default=None, help="score only the first S seconds")
    p.add_argument("--max-recordings", type=int, default=None)
    p.add_argument("--bin-seconds", type=float, default=60.0)
    p.add_argument("--device", default=None)
    add_output_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("info", help="parameter counts of a preset's models, built on the meta device")
    p.add_argument("--preset", default="laptop", choices=PRESETS)
    add_output_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("sample", help="continue held-out prompts with a trained model (tokens to .npy)")
    p.add_argument("--run", required=True)
    p.add_argument("--tokens", default=None)
    p.add_argument("--prompt-seconds", type=float, default=4.0, help="prompt length, 0.04-3600 s (default 4)")
    p.add_argument("--seconds", type=float, default=20.0, help="continuation length, 0.04-3600 s: at most an hour "
                   "(90,000 tokens) per prompt, with a progress bar on stderr (default 20)")
    p.add_argument("--batch", type=int, default=2, help="held-out prompts continued at once, 1-1024 (default 2)")
    p.add_argument("--temperature", type=float, default=1.0, help="finite, >= 0 (0: greedy; default 1)")
    p.add_argument("--top-k", type=int, default=None, help=">= 1 (default: off)")
    p.add_argument("--top-p", type=float, default=None, help="in (0, 1] (default: off)")
    p.add_argument("--seed", type=int, default=0, help="0 .. 2**63 - 1 (default 0)")
    p.add_argument("--out", default=None, help="output .npy (default RUN/samples.npy)")
    p.add_argument("--device", default=None)
    add_output_args(p)
    p.set_defaults(func=cmd_sample)


def main(argv: list[str] | None = None) -> int:
    """Only the lm commands (for torchrun): `python -m workbench.lm.cli train ...`."""
    import sys

    from workbench.core.cli import run_command

    parser = argparse.ArgumentParser(prog="python -m workbench.lm.cli")
    register(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(["lm", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    raise SystemExit(main())
