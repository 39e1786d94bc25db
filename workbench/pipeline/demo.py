"""`python -m workbench demo [--preset laptop] [--port 7860]`: continue a spoken prompt in the browser (Gradio).

The pipeline is `continue_speech`: a prompt (a held-out corpus recording's first seconds, or an uploaded or
recorded clip of 2-30 s) -> semantic tokens (the preset's tokenizer, windowed) -> a Griffin continuation
(constant-memory streaming decode) -> audio through the acoustic stage and the codec when that stage is available;
until then the continuation is shown as tokens and the UI says why there is no audio. In the app the
continuation streams (`stream_speech`): Griffin's tokens are rendered a chunk at a time, so the first seconds
play while the rest of a minutes-long continuation is generated; one continuation runs at a time, a bounded
queue waits behind it. Everything a user can get
wrong (no checkpoints, a prompt too short, silent or unreadable) is one clear message in the UI, naming the
command that fixes it. The app serves on 127.0.0.1 only, with Gradio's analytics off.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workbench.core import paths, validate
from workbench.core.audio import SAMPLE_RATE, AudioError, check_audio, load_audio
from workbench.core.errors import UserError

MIN_PROMPT_S = 2.0
MAX_PROMPT_S = 30.0
MAX_CONTINUATION_S = 600.0
QUEUE_SIZE = 8  # requests waiting for the one running continuation; more are turned away with a message


@dataclass
class Pipeline:
    preset: str
    tokenizer: Any
    model: Any
    lm_meta: dict
    lm_run: Path
    corpus: Path | None
    held_out: dict[str, Any] = field(default_factory=dict)  # recording id -> corpus Recording
    render: Any = None  # semantic tokens + speaker audio -> waveform (the acoustic stage), or None ...
    no_audio: str | None = None  # ... and why


def load_pipeline(preset: str = "laptop", *, tokenizer_dir: str | Path | None = None,
                  lm_run: str | Path | None = None, corpus: str | Path | None = None,
                  acoustic_run: str | Path | None = None) -> Pipeline:
    """The tokenizer and the Griffin run of `preset`, checked to belong together, and the acoustic stage where
    there is one for them. Each missing piece of the first two is a UserError naming the command that makes it;
    without the acoustic stage the pipeline runs to tokens and says why there is no audio."""
    from workbench.lm.model import load_model
    from workbench.pipeline.extrapolate import acoustic_renderer, find_run
    from workbench.tokenizer.model import Tokenizer, TokenizerError, fingerprint

    tok_path = Path(tokenizer_dir or paths.tokenizer_dir(preset))
    corpus_path, tokens_path = paths.corpus_dir(preset), paths.tokens_dir(preset)
    try:
        tokenizer = Tokenizer.load(tok_path)
    except TokenizerError as err:
        raise UserError(f"{err}. Train the tokenizer: python -m workbench tokenizer train --preset {preset}") from None
    run = Path(lm_run) if lm_run else find_run(preset, "griffin")
    if run is None or not (run / "checkpoint.json").is_file():
        raise UserError(f"no trained Griffin LM for preset {preset!r}" + (f" in {run}" if run else "") +
                        f". Encode the corpus with the tokenizer and train it: python -m workbench tokenizer encode "
                        f"--tokenizer {tok_path} --corpus {corpus_path} --out {tokens_path} && "
                        f"python -m workbench lm train --preset {preset} --model griffin")
    model, meta = load_model(run)
    token_meta = Path(meta["tokens"]) / "tokens.json"
    trained_on = json.loads(token_meta.read_text()).get("fingerprint") if token_meta.is_file() else None
    if trained_on != fingerprint(tokenizer):
        what = "SYNTHETIC tokens" if (Path(meta["tokens"]) / "SYNTHETIC").exists() else \
            f"the tokens in {meta['tokens']} (another tokenizer)"
        raise UserError(f"the Griffin run {run} was trained on {what}, not on units of the tokenizer {tok_path}: "
                        f"encode the corpus with it and retrain: python -m workbench tokenizer encode --tokenizer "
                        f"{tok_path} --corpus {corpus_path} --out {tokens_path} && "
                        f"python -m workbench lm train --preset {preset} --model griffin --tokens {tokens_path}")
    if tokenizer.num_units > model.config.vocab_size:
        raise UserError(f"the tokenizer has {tokenizer.num_units} units, the LM only {model.config.vocab_size}")
    corpus_dir = Path(corpus) if corpus else _token_corpus(Path(meta["tokens"]))
    render, no_audio = acoustic_renderer(preset, meta["tokens"], acoustic_run)
    pipe = Pipeline(preset, tokenizer, model, meta, run, corpus_dir, render=render, no_audio=no_audio)
    if corpus_dir is not None and corpus_dir.is_dir():
        from workbench.data.loaders import open_dataset

        held = [r for r in open_dataset(corpus_dir).recordings if r.split in ("dev", "test", "valid")]
        pipe.held_out = {r.id: r for r in held if r.duration >= MIN_PROMPT_S}
    return pipe


def _token_corpus(token_dir: Path) -> Path | None:
    meta = token_dir / "tokens.json"
    return Path(json.loads(meta.read_text())["corpus"]) if meta.is_file() else None


def prompt_audio(pipe: Pipeline, recording: str | None, upload: tuple[int, np.ndarray] | str | None,
                 prompt_seconds: float) -> np.ndarray:
    """The prompt waveform (16 kHz mono): the upload if there is one, else the held-out recording's first
    `prompt_seconds`. Too short, silent, unreadable or missing -> UserError."""
    if not MIN_PROMPT_S <= prompt_seconds <= MAX_PROMPT_S:
        raise UserError(f"prompt length {prompt_seconds} s: choose {MIN_PROMPT_S:g}-{MAX_PROMPT_S:g} s")
    try:
        if isinstance(upload, (str, Path)):  # the app's uploads: a file read by our loader, its checks apply
            wav = load_audio(upload, max_seconds=MAX_PROMPT_S, trim=True)  # only the prompt's seconds are read
        elif upload is not None:
            sr, data = upload
            data = np.asarray(data)
            if np.issubdtype(data.dtype, np.integer):  # what a browser recording arrives as
                data = data.astype(np.float32) / np.iinfo(data.dtype).max
            wav = check_audio(data, int(sr), name="the uploaded prompt")
        elif recording:
            if recording not in pipe.held_out:
                raise UserError(f"unknown recording {recording!r}; held-out recordings: {', '.join(pipe.held_out)}")
            wav = pipe.held_out[recording].load(0.0, prompt_seconds)
            wav = check_audio(wav, SAMPLE_RATE, name=recording)
        else:
            raise UserError("no prompt: pick a held-out recording or upload / record a clip")
    except AudioError as err:
        raise UserError(f"unusable prompt: {err}") from None
    wav = wav[: int(prompt_seconds * SAMPLE_RATE)]
    if len(wav) < MIN_PROMPT_S * SAMPLE_RATE:
        raise UserError(f"the prompt is {len(wav) / SAMPLE_RATE:.2f} s long; at least {MIN_PROMPT_S:g} s are needed")
    return wav


FIRST_CHUNK_S = 2.0  # the first audio the page plays: short, so it starts soon ...
CHUNK_S = 6.0  # ... then longer chunks, each rendered while the previous one plays
FLUSH_S = 0.2  # after a chunk, when an empty update collects the rest of its encoded audio (`stream_updates`)
CONTEXT_S = 1.0  # tokens before a chunk the acoustic stage sees again, so chunks join without a seam


def stream_speech(pipe: Pipeline, prompt_wav: np.ndarray, seconds: float = 10.0, temperature: float = 1.0,
                  seed: int = 0, first_chunk_s: float = FIRST_CHUNK_S, chunk_s: float = CHUNK_S
                  ) -> Iterator[dict[str, Any]]:
    """`continue_speech` as it happens: Griffin streams tokens (`workbench.lm.generate.stream`, constant memory)
    and every chunk of them (`first_chunk_s`, then `chunk_s` seconds) is rendered to audio by the acoustic stage
    where there is one, re-reading `CONTEXT_S` of the tokens before it. Yields, per chunk, the prompt tokens, the
    continuation so far, the chunk's audio (or None, and the note says why), the sample rate and a note; the
    last event has ``done`` True."""
    import torch

    from workbench.lm.config import TOKENS_PER_SECOND
    from workbench.lm.generate import stream
    from workbench.tokenizer.windowed import tokenize_windowed

    if not 0 < seconds <= MAX_CONTINUATION_S:
        raise UserError(f"continuation length {seconds} s: choose up to {MAX_CONTINUATION_S:g} s")
    if not 0 <= temperature <= 2:
        raise UserError(f"temperature {temperature}: choose 0 (greedy) to 2")
    prompt = tokenize_windowed(pipe.tokenizer, np.asarray(prompt_wav, dtype=np.float32)).astype(np.int64)
    new = max(1, round(seconds * TOKENS_PER_SECOND))
    first, step = (max(1, round(s * TOKENS_PER_SECOND)) for s in (first_chunk_s, chunk_s))
    context = round(CONTEXT_S * TOKENS_PER_SECOND)
    tokens: list[int] = []
    rendered = 0  # tokens already turned into audio
    for token in stream(pipe.model, torch.from_numpy(prompt)[None], new, temperature=temperature, seed=int(seed),
                        num_units=pipe.tokenizer.num_units):
        tokens.append(int(token[0]))
        boundary = first if rendered == 0 else rendered + step
        if len(tokens) < min(boundary, new):
            continue
        continuation = np.asarray(tokens, dtype=np.int64)
        audio = None
        if pipe.render is not None:  # in the prompt's voice, the chunk with some context before it
            start = max(0, rendered - context)
            wav = np.asarray(pipe.render(continuation[start:], prompt_wav, seed=int(seed)), dtype=np.float32)
            per_token = len(wav) / (len(continuation) - start)
            audio = wav[round((rendered - start) * per_token):]
        rendered = len(tokens)
        done = rendered == new
        note = (f"{rendered} tokens ({rendered / TOKENS_PER_SECOND:.1f} s) continue {len(prompt)} prompt tokens"
                + ("" if done else f" (of {new}; generating ...)"))
        note += ("; audio by the acoustic stage in the prompt's voice." if pipe.render is not None
                 else f"; no audio: {pipe.no_audio}.")
        yield {"prompt_tokens": prompt, "continuation": continuation, "audio": audio, "sample_rate": SAMPLE_RATE,
               "note": note, "done": done}


def continue_speech(pipe: Pipeline, prompt_wav: np.ndarray, seconds: float = 10.0, temperature: float = 1.0,
                    seed: int = 0) -> dict[str, Any]:
    """Prompt audio -> semantic tokens -> Griffin continuation of `seconds` -> audio where the acoustic stage
    exists (rendered in one piece). Returns the prompt and continuation tokens, the audio (or None) and a note
    saying what happened."""
    *_, last = stream_speech(pipe, prompt_wav, seconds, temperature, seed, first_chunk_s=seconds, chunk_s=seconds)
    return last


def stream_updates(events: Iterator[dict[str, Any]], flush_s: float = FLUSH_S
                   ) -> Iterator[tuple[tuple[int, np.ndarray] | None, bool, dict[str, Any]]]:
    """`stream_speech`'s events as what the app's streamed audio output takes: (``(rate, int16 audio)`` or None,
    whether this update carries a new chunk, the event). The browser's stream is AAC encoded as it arrives, and
    what the encoder has not finished when an update is sent waits for the next update -- for a whole chunk's
    generation time. So after each chunk, `flush_s` later, an empty update collects the rest: the first seconds
    really play while the next ones are generated. One gain for the whole stream (the first chunk's peak to
    0.9), so chunks keep their relative loudness (Gradio would scale each float chunk to its own peak)."""
    gain = None
    for result in events:
        audio = result["audio"]
        if audio is None:
            yield None, True, result
            continue
        audio = np.asarray(audio, dtype=np.float32)
        if gain is None:
            peak = float(np.abs(audio).max()) if len(audio) else 0.0
            gain = 0.9 / peak if peak > 1e-4 else 1.0
        yield (result["sample_rate"], (np.clip(audio * gain, -1.0, 1.0) * 32767).astype(np.int16)), True, result
        time.sleep(flush_s)
        yield (result["sample_rate"], np.zeros(0, dtype=np.int16)), False, result


def tokens_figure(result: dict[str, Any]):
    """Prompt and continuation units against time, the boundary marked."""
    import plotly.graph_objects as go

    from workbench.lm.config import TOKENS_PER_SECOND

    p, c = result["prompt_tokens"], result["continuation"]
    fig = go.Figure()
    fig.add_scatter(x=np.arange(len(p)) / TOKENS_PER_SECOND, y=p, mode="markers", marker=dict(size=4), name="prompt")
    fig.add_scatter(x=(len(p) + np.arange(len(c))) / TOKENS_PER_SECOND, y=c, mode="markers", marker=dict(size=4),
                    name="Griffin continuation")
    fig.add_vline(x=len(p) / TOKENS_PER_SECOND, line_dash="dash")
    fig.update_layout(title="Semantic units (25 per second)", xaxis_title="seconds", yaxis_title="unit", height=320)
    return fig


def build_app(preset: str = "laptop", **paths: Any):
    """The Gradio Blocks app. A missing or mismatched checkpoint does not stop it from starting: the page says
    what is missing (with the command that trains it), and every request tries to load it again, so training it
    meanwhile is enough."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    state: dict[str, Any] = {}

    def pipeline() -> Pipeline:
        if "pipe" not in state:
            state["pipe"] = load_pipeline(preset, **paths)
        return state["pipe"]

    try:
        choices, status = list(pipeline().held_out), f"Loaded the **{preset}** tokenizer and Griffin LM ({pipeline().lm_run})."
    except UserError as err:
        choices, status = [], f"**Not ready:** {err}"

    def run(recording, upload, prompt_seconds, seconds, temperature, seed):
        """A generator: the continuation's audio streams chunk by chunk (the first seconds play while the rest is
        generated), the units plot and the note follow each chunk."""
        try:
            seed = validate.seed(int(seed) if isinstance(seed, float) and seed.is_integer() else seed, "seed")
            pipe = pipeline()
            wav = prompt_audio(pipe, recording or None, upload, float(prompt_seconds))
            updates = stream_updates(stream_speech(pipe, wav, float(seconds), float(temperature), seed))
            for k, (audio, new_chunk, result) in enumerate(updates):
                yield ((SAMPLE_RATE, wav) if k == 0 else gr.skip(), audio,
                       tokens_figure(result) if new_chunk else gr.skip(), result["note"])
        except UserError as err:
            raise gr.Error(str(err)) from None

    with gr.Blocks(title="SpeechSSM Workbench: continue speech") as app:
        gr.Markdown("# Continue speech with Griffin\nA prompt becomes semantic units, Griffin continues them "
                    "with a constant-size state, the acoustic stage turns units into audio.")
        gr.Markdown(status)
        with gr.Row():
            recording = gr.Dropdown(choices, value=choices[0] if choices else None, label="held-out recording",
                                    allow_custom_value=True)
            # a file path, not Gradio's decoding: the upload goes through workbench.core.audio.load_audio
            upload = gr.Audio(sources=["upload", "microphone"], type="filepath", label="or your own prompt (2-30 s)")
        with gr.Row():
            prompt_seconds = gr.Slider(MIN_PROMPT_S, 10, value=5, step=0.5, label="prompt seconds")
            seconds = gr.Slider(1, MAX_CONTINUATION_S, value=10, step=1, label="continuation seconds")
            temperature = gr.Slider(0, 1.5, value=1.0, step=0.05, label="temperature")
            seed = gr.Number(0, precision=0, label="seed")
        go_button = gr.Button("Continue", variant="primary")
        with gr.Row():
            prompt_out = gr.Audio(label="prompt", type="numpy", interactive=False)
            continuation_out = gr.Audio(label="continuation (streams while it is generated)", type="numpy",
                                        interactive=False, streaming=True, autoplay=True)
        plot = gr.Plot(label="semantic units")
        note = gr.Markdown()
        go_button.click(run, [recording, upload, prompt_seconds, seconds, temperature, seed],
                        [prompt_out, continuation_out, plot, note], api_name="continue_speech")
    # one continuation at a time (it takes the CPU), a bounded line of waiting ones: the page says when it is full
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return app


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a browser demo: continue a spoken prompt with Griffin (Gradio, 127.0.0.1)")
    p.add_argument("--preset", default="laptop")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default runs/tokenizer/<preset>/learned)")
    p.add_argument("--lm-run", default=None, help="Griffin run (default runs/lm/<preset>/griffin)")
    p.add_argument("--corpus", default=None, help="corpus for held-out prompts (default: the one the tokens came from)")
    p.add_argument("--acoustic-run", default=None, help="SoundStorm run (default runs/acoustic/<preset>)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    app = build_app(args.preset, tokenizer_dir=args.tokenizer, lm_run=args.lm_run, corpus=args.corpus,
                    acoustic_run=args.acoustic_run)
    app.launch(server_name="127.0.0.1", server_port=args.port)
    return 0
