"""The bad-input matrix (issue 18): every command that takes audio or numbers, run against tiny smoke models with
inputs a new user might give it. A refusal is exit status 2 and exactly one line on stderr, ``error: ...``, naming
the argument or file (no traceback); conversions the README documents (stereo, other sample rates, unicode
paths) still succeed. Each row is (command argv, what is wrong) -> a regex the one line must match.

Placeholders in the argv: {tmp} the test's folder, {bad:KIND} a prepared input (see `_write`), {good} a real
16 kHz speech clip, {lm} / {codec} / {acoustic} / {tok} / {tokens} / {corpus} the smoke runs of this module.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.audio import AudioConversionWarning, AudioError, load_audio

ROOT = Path(__file__).resolve().parent.parent
REAL_SPEECH = Path(__file__).parent / "fixtures" / "real-speech"
GOOD = REAL_SPEECH / "19-198-0000.flac"  # 16 kHz mono speech

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::workbench.core.audio.AudioConversionWarning")]


# -- the bad inputs ---------------------------------------------------------------------------------------------------
def _write(path: Path, kind: str) -> Path:
    """One bad (or odd-but-fine) audio input of `kind` at `path`."""
    rng = np.random.default_rng(0)
    speech, sr = sf.read(str(GOOD), dtype="float32")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "nan":
        x = speech[: 3 * sr].copy()
        x[100] = np.nan
        sf.write(path, x, sr, subtype="FLOAT")
    elif kind == "silence":
        sf.write(path, np.zeros(4 * sr, np.float32), sr)
    elif kind == "1hz":  # 40 KB declaring 1 Hz: resampled first, it would be hours of 16 kHz audio
        sf.write(path, rng.uniform(-0.5, 0.5, 20_000).astype(np.float32), 1, subtype="PCM_16")
    elif kind == "stereo":
        sf.write(path, np.stack([speech, 0.5 * speech], axis=1)[: 4 * sr], sr)
    elif kind == "8k":
        sf.write(path, speech[: 4 * sr: 2], 8000)
    elif kind == "dir":
        path.mkdir()
    elif kind == "good":
        shutil.copy(GOOD, path)
    else:
        raise KeyError(kind)
    return path


# -- smoke models, trained once for the module --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, smoke_corpus, smoke_tokenizer):
    """Tiny LM (synthetic tokens), codec and SoundStorm runs: a couple of steps each, only for their interfaces."""
    from workbench.acoustic.config import PRESETS as ACOUSTIC
    from workbench.acoustic.train import train as train_acoustic
    from workbench.codec.config import PRESETS as CODEC
    from workbench.codec.train import train as train_codec
    from workbench.core.config import override
    from workbench.lm.config import train_config
    from workbench.lm.data import SYNTHETIC_PRESETS, write_synthetic_tokens
    from workbench.lm.model import model_config
    from workbench.lm.train import train as train_lm

    root = tmp_path_factory.mktemp("bad-inputs")
    tokens = write_synthetic_tokens(root / "tokens", SYNTHETIC_PRESETS["smoke"])
    lm_cfg = dataclasses.replace(train_config("smoke"), steps=2, batch_size=2, window_tokens=32, log_every=1,
                                 eval_every=2, checkpoint_every=2, warmup_steps=1)
    train_lm(root / "lm", model_config("smoke"), lm_cfg, tokens, preset="smoke", progress=False)
    train_codec(root / "codec", CODEC["smoke"].model, override(CODEC["smoke"].train, steps=2, adversarial=False),
                smoke_corpus, progress=False)
    acoustic = dataclasses.replace(ACOUSTIC["smoke"], train=override(ACOUSTIC["smoke"].train, steps=2))
    train_acoustic(root / "acoustic", acoustic, smoke_corpus, root / "codec", smoke_tokenizer, root / "pairs",
                   progress=False, preset_name="smoke")
    return {"lm": root / "lm", "codec": root / "codec", "acoustic": root / "acoustic", "tok": smoke_tokenizer,
            "tokens": tokens, "corpus": smoke_corpus}


@pytest.fixture
def place(tmp_path, runs):
    """Fill the placeholders of an argv; bad inputs are written on first use."""
    def fill(arg: str) -> str:
        if arg.startswith("{bad:"):
            kind, _, suffix = arg[5:-1].partition(".")
            name = {"dir": "folder"}.get(kind, f"{kind}.{suffix or 'wav'}")
            path = tmp_path / name
            return str(path if path.exists() else _write(path, kind))
        return arg.format(tmp=tmp_path, good=GOOD, **{k: str(v) for k, v in runs.items()})
    return lambda argv: [fill(a) for a in argv]


def refused(argv: list[str], capsys) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one line `error: ...` on stderr (after at most the
    progress bar of work that had started). Returns that line."""
    capsys.readouterr()
    code = main(argv)  # an uncaught exception (a traceback) fails the test here
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert all("%|" in line for line in lines[:-1]), err  # anything before the error is a tqdm bar
    return lines[-1]


# -- the matrix -------------------------------------------------------------------------------------------------------
LM_SAMPLE = ["lm", "sample", "--run", "{lm}", "--seconds", "0.2", "--prompt-seconds", "0.4", "--out", "{tmp}/s.npy"]
CODEC = ["--preset", "smoke", "--ckpt", "{codec}"]
SYNTH = ["acoustic", "synthesize", "--preset", "smoke", "--ckpt", "{acoustic}", "--semantic", "{tmp}/sem.npy",
         "--prompt", "{good}", "--out", "{tmp}/a.wav"]

MATRIX = [
    # data info: bad folders and files (were tracebacks)
    (["data", "info", "{tmp}/nowhere"], r"nowhere: no such corpus folder"),
    (["data", "info", "{good}"], r"19-198-0000.flac: is a file; a corpus is a folder"),
    (["data", "info", "{tmp}", "--kind", "bogus"], r"unknown corpus kind 'bogus'; kinds: auto, synthbooks"),
    (["data", "info", "{tmp}", "--kind", "synthbooks"], r"manifest.jsonl: no such file"),
    (["data", "info", "{tmp}"], r"no audio found"),
    *[(["data", "info", "{tmp}", "--x", f"{{bad:{k}}}"], msg) for k, msg in (
        ("text", r"text.wav: not a readable audio file"), ("empty", r"empty.wav: not a readable audio file"),
        ("1hz", r"1hz.wav: sample rate 1 Hz is below 4000 Hz"))],
    # tokenizer
    (["tokenizer", "train", "--preset", "smoke", "--corpus", "{tmp}", "--x", "{bad:good.flac}"],
     r"--corpus .*: not a SynthBooks-Long corpus \(no manifest.jsonl\)"),
    (["tokenizer", "train", "--preset", "smoke", "--corpus", "{tmp}/nowhere"], r"nowhere: no such corpus folder"),
    (["tokenizer", "train", "--preset", "smoke", "--corpus", "{corpus}", "--steps", "0"], r"--steps 0: must be an integer >= 1"),
    (["tokenizer", "encode", "--tokenizer", "{tok}", "--corpus", "{tmp}", "--out", "{tmp}/units", "--x",
      "{bad:silence}"], r"silence.wav: is all silence"),
    (["tokenizer", "encode", "--tokenizer", "{tok}", "--corpus", "{tmp}", "--out", "{tmp}/units", "--x", "{bad:nan}"],
     r"nan.wav: contains NaN"),
    (["tokenizer", "encode", "--tokenizer", "{tok}", "--corpus", "{tmp}", "--out", "{tmp}/units", "--x", "{bad:1hz}"],
     r"1hz.wav: sample rate 1 Hz is below 4000 Hz"),
    (["tokenizer", "encode", "--tokenizer", "{tmp}/nowhere", "--corpus", "{corpus}", "--out", "{tmp}/units"],
     r"nowhere"),
    # codec encode: every bad audio file, named; outputs checked before work
    *[(["codec", "encode", *CODEC, f"{{bad:{k}}}", "--out", "{tmp}/c.npz"], msg) for k, msg in (
        ("empty", r"empty.wav: empty file"), ("text", r"text.wav: not a readable audio file"),
        ("nan", r"nan.wav: contains NaN"), ("silence", r"silence.wav: is all silence"),
        ("1hz", r"1hz.wav: sample rate 1 Hz is below 4000 Hz"), ("dir", r"folder: is a directory"))],
    (["codec", "encode", *CODEC, "{tmp}/missing.wav", "--out", "{tmp}/c.npz"], r"missing.wav: no such file"),
    (["codec", "encode", *CODEC, "{good}", "--out", "{tmp}/c.wav"], r"--out .*c.wav: must end in .npz"),
    (["codec", "encode", *CODEC, "{good}", "--out", "{tmp}/c.npz", "--n-q", "0"], r"--n-q 0: must be an integer"),
    (["codec", "encode", *CODEC, "{good}", "--out", "{tmp}/c.npz", "--n-q", "99"], r"--n-q 99: this codec has levels 1..4"),
    (["codec", "decode", *CODEC, "{tmp}/c.npz", "--out", "{tmp}"], r"--out .*: is a folder"),
    (["codec", "decode", *CODEC, "{tmp}/c.npz", "--out", "{tmp}/x.mp3"], r"--out .*x.mp3: must end in .wav or .flac"),
    (["codec", "decode", *CODEC, "{bad:text.npz}", "--out", "{tmp}/x.wav"], r"text.npz: not a codes file"),
    (["codec", "decode", *CODEC, "{tmp}/none.npz", "--out", "{tmp}/x.wav"], r"none.npz: no such codes file"),
    (["codec", "decode", *CODEC, "{tmp}/huge.npz", "--out", "{tmp}/x.wav"], r"huge.npz: .* at most 7200 s \(2 h\)"),
    # acoustic synthesize: numbers, outputs, inputs, the length cap
    (SYNTH + ["--temperature", "nan"], r"--temperature nan: must be a finite number >= 0"),
    (SYNTH + ["--temperature", "-1"], r"--temperature -1.0: must be a finite number >= 0"),
    (SYNTH + ["--guidance", "11"], r"--guidance 11.0: must be a finite number in \[0, 10\]"),
    (SYNTH + ["--seed", str(2**70)], r"--seed 1180591620717411303424: must be an integer in \[0, 2\*\*63 - 1\]"),
    (SYNTH + ["--seed", "-1"], r"--seed -1: must be an integer in \[0, 2\*\*63 - 1\]"),
    (SYNTH + ["--iterations", "0"], r"--iterations 0: must be an integer in \[1, 1000\]"),
    (SYNTH[:-1] + ["{tmp}"], r"--out .*: is a folder"),
    (SYNTH[:-1] + ["{tmp}/a.mp3"], r"--out .*a.mp3: must end in .wav or .flac \(got .mp3\)"),
    (SYNTH[:6] + ["--semantic", "{tmp}/long.npy"] + SYNTH[8:], r"long.npy: 1000000 tokens .*at most 90000"),
    (SYNTH[:6] + ["--semantic", "{bad:text.npy}"] + SYNTH[8:], r"text.npy: not a .npy array"),
    (SYNTH[:6] + ["--semantic", "{tmp}"] + SYNTH[8:], r"--semantic .*: is a folder"),
    (SYNTH[:8] + ["--prompt", "{bad:nan}", "--out", "{tmp}/a.wav"], r"nan.wav: contains NaN"),
    (SYNTH[:8] + ["--prompt", "{bad:1hz}", "--out", "{tmp}/a.wav"], r"1hz.wav: sample rate 1 Hz is below 4000 Hz"),
    (SYNTH[:6] + ["--audio", "{bad:empty}"] + SYNTH[8:], r"empty.wav: empty file"),
    # lm sample / eval / train
    (LM_SAMPLE + ["--temperature", "nan"], r"--temperature nan: must be a finite number >= 0"),
    (LM_SAMPLE + ["--top-k", "-1"], r"--top-k -1: must be an integer >= 1"),
    (LM_SAMPLE + ["--top-p", "2"], r"--top-p 2.0: must be a finite number in \(0, 1\]"),
    (LM_SAMPLE + ["--top-p", "0"], r"--top-p 0.0: must be a finite number in \(0, 1\]"),
    (LM_SAMPLE + ["--batch", "0"], r"--batch 0: must be an integer in \[1, 1024\]"),
    (LM_SAMPLE + ["--seed", str(2**70)], r"--seed 1180591620717411303424: must be an integer in \[0, 2\*\*63 - 1\]"),
    (LM_SAMPLE + ["--seconds", "1e9"], r"--seconds 1000000000.0: must be a finite number in \[0.04, 3600\]"),
    (LM_SAMPLE + ["--seconds", "nan"], r"--seconds nan: must be a finite number"),
    (LM_SAMPLE + ["--prompt-seconds", "0"], r"--prompt-seconds 0.0: must be a finite number in \[0.04, 3600\]"),
    (LM_SAMPLE[:-1] + ["{tmp}/s.txt"], r"--out .*s.txt: must end in .npy"),
    (LM_SAMPLE[:-1] + ["{tmp}"], r"--out .*: is a folder"),
    (["lm", "eval", "--runs", "{lm}", "--bin-seconds", "0"], r"--bin-seconds 0.0: must be a finite number > 0"),
    (["lm", "train", "--preset", "smoke", "--tokens", "{tokens}", "--out", "{tmp}/run", "--lr", "nan"], r"lr"),
    (["lm", "train", "--preset", "smoke", "--tokens", "{tokens}", "--out", "{tmp}/run", "--window", "infs"],
     r"bad window 'infs': give tokens"),
    (["lm", "train", "--preset", "smoke", "--tokens", "{tokens}", "--out", "{tmp}/run", "--window", "99999s"],
     r"--window 2499975 tokens .*longer than all the training tokens"),
    (["lm", "train", "--preset", "smoke", "--tokens", "{tokens}", "--out", "{tmp}/run", "--steps", "0"], r"steps"),
    (["lm", "train", "--preset", "smoke", "--tokens", "{tokens}", "--out", "{tmp}/run", "--max-minutes", "0"],
     r"max_minutes|max-minutes"),
    (["lm", "train", "--preset", "smoke", "--tokens", "{tokens}", "--out", "{tmp}/run", "--snapshots", "-1"],
     r"snapshots must be >= 0"),
    (["acoustic", "train", "--preset", "smoke", "--out", "{tmp}/run", "--cross-voice", "1.5"],
     r"--cross-voice 1.5: a share, between 0 and 1"),
    (["acoustic", "train", "--preset", "smoke", "--out", "{tmp}/run", "--threads", "0"],
     r"--threads must be at least 1"),
    (["data", "build", "--preset", "smoke", "--out", "{tmp}/c", "--real-speech", "{tmp}/nowhere"],
     r"real speech .*nowhere: no such folder"),
    (["extrapolate", "--preset", "smoke", "--runs", "{tmp}/runs", "--workers", "0"],
     r"workers must be a whole number >= 1"),
    (["codec", "eval", "--preset", "smoke", "--ckpt", "{tmp}/nowhere", "--postfilter", "0", "1.2"],
     r"--postfilter factors must be in \(0, 3\] \(got 0 1.2\)"),
]


def _id(row) -> str:
    argv, _ = row
    words = [a for a in argv if not a.startswith("{") and a not in ("--preset", "smoke", "--ckpt", "--out", "--run")]
    bad = [a[5:-1] for a in argv if a.startswith("{bad:")]
    return "-".join(words[:2] + words[-2:] + bad)[:60]


@pytest.mark.parametrize("argv, message", MATRIX, ids=[_id(r) for r in MATRIX])
def test_bad_input_is_one_line(argv, message, place, tmp_path, capsys):
    """`--x FILE` in a row: FILE is written into {tmp} (the folder the command reads) but not passed."""
    np.save(tmp_path / "sem.npy", np.zeros(50, np.int64))
    np.save(tmp_path / "long.npy", np.zeros(10**6, np.int64))  # 11 hours of tokens: over the hour's cap
    if "{tmp}/huge.npz" in argv:  # 3 hours of codes at 50 Hz: over codec decode's 2 h
        np.savez(tmp_path / "huge.npz", codes=np.zeros((1, 3 * 3600 * 50), np.int16), num_samples=3 * 3600 * 16_000,
                 sample_rate=16_000, hop=320, codebook_size=64)
    args, i = [], 0
    while i < len(argv):
        if argv[i] == "--x":
            place([argv[i + 1]])
            i += 2
            continue
        args.append(argv[i])
        i += 1
    if args[:2] == ["data", "info"] or args[:2] == ["tokenizer", "train"] or "--corpus" in args:
        for name in ("sem.npy", "long.npy"):  # keep corpus folders to what the row put there
            (tmp_path / name).unlink()
    line = refused(place(args), capsys)
    assert re.search(message, line), line


# -- inputs that already worked keep working ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["stereo", "8k", "unicode"])
def test_documented_conversions_still_succeed(kind, runs, tmp_path, capsys):
    """Stereo is averaged, 8 kHz resampled (each with a warning), a unicode path is just a path."""
    folder = tmp_path / ("Ünïcødé 音声" if kind == "unicode" else kind)
    folder.mkdir()
    audio = _write(folder / f"{kind}-clip.wav", "good" if kind == "unicode" else kind)
    assert main(["data", "info", str(folder), "--json"]) == 0
    assert '"recordings": 1' in capsys.readouterr().out
    codes = folder / "codes.npz"
    assert main(["codec", "encode", "--preset", "smoke", "--ckpt", str(runs["codec"]), str(audio), "--out",
                 str(codes), "--json"]) == 0
    assert main(["codec", "decode", "--preset", "smoke", "--ckpt", str(runs["codec"]), str(codes), "--out",
                 str(folder / "back.flac"), "--json"]) == 0
    assert sf.info(str(folder / "back.flac")).samplerate == 16_000
    assert abs(sf.info(str(folder / "back.flac")).duration - sf.info(str(audio)).duration) < 0.05


# -- bounded memory: the header decides before anything is decoded --------------------------------------------------
def test_a_wav_declared_at_1_hz_is_refused_at_once(tmp_path, monkeypatch):
    path = _write(tmp_path / "1hz.wav", "1hz")
    assert path.stat().st_size < 50_000

    def no_samples(*args, **kwargs):
        raise AssertionError("the samples were read before the header refused the file")

    # resampled first, it was 5.5 h of audio and 3 GB: the header alone must decide
    monkeypatch.setattr(sf, "read", no_samples)
    monkeypatch.setattr(sf.SoundFile, "read", no_samples)
    with pytest.raises(AudioError, match=r"1hz.wav: sample rate 1 Hz is below 4000 Hz"):
        load_audio(path)


def test_the_duration_cap_reads_only_what_it_keeps(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 4000 * 60).astype(np.float32), 4000)  # 60 s at 4 kHz
    with pytest.raises(AudioError, match=r"long.wav: 0:01:00 \(h:mm:ss\) long .* at most 0:00:10"):
        load_audio(path, max_seconds=10)
    with pytest.warns(AudioConversionWarning, match="using its first 2 s of 60.0 s"):
        wav = load_audio(path, max_seconds=2, trim=True)
    assert wav.shape == (2 * 16_000,)  # 2 s read at 4 kHz, then resampled: never the whole minute


def test_the_cli_refusal_is_one_line_in_a_real_process(tmp_path):
    """What a user sees: exit status 2, one stderr line, no traceback (the in-process rows above run the same
    handler)."""
    _write(tmp_path / "1hz.wav", "1hz")
    proc = subprocess.run([sys.executable, "-m", "workbench", "data", "info", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert re.fullmatch(r"error: .*1hz.wav: sample rate 1 Hz is below 4000 Hz.*\n", proc.stderr)


# -- tokenizer encode cleans up after a failing file ------------------------------------------------------------------
def test_encode_leaves_no_half_claimed_folder(runs, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _write(corpus / "a-good.flac", "good")
    _write(corpus / "b-silence.wav", "silence")
    out = tmp_path / "units"
    line = refused(["tokenizer", "encode", "--tokenizer", str(runs["tok"]), "--corpus", str(corpus), "--out",
                    str(out)], capsys)
    assert "b-silence.wav: is all silence" in line
    assert not out.exists()  # no tokens.json {"complete": false}, no orphan unit files
    (corpus / "b-silence.wav").unlink()
    assert main(["tokenizer", "encode", "--tokenizer", str(runs["tok"]), "--corpus", str(corpus), "--out",
                 str(out), "--json"]) == 0
    assert '"complete": true' in (out / "tokens.json").read_text()


# -- long generation: a stated cap and a progress bar ------------------------------------------------------------------
def test_help_states_the_bounds(capsys):
    for argv, wanted in ((["lm", "sample"], ["3600", "progress", "2**63 - 1", "(0, 1]"]),
                         (["acoustic", "synthesize"], ["3600", "90,000", "2**63 - 1", ">= 0", "4-384 kHz"]),
                         (["codec", "encode"], ["4-384 kHz", "2 h"])):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(w in text for w in wanted), (argv, [w for w in wanted if w not in text])


def test_generation_shows_progress(runs, tmp_path, capsys):
    assert main(["lm", "sample", "--run", str(runs["lm"]), "--seconds", "0.4", "--prompt-seconds", "0.4",
                 "--batch", "1", "--top-p", "1", "--top-k", "5", "--seed", str(2**63 - 1),
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert "sampling" in capsys.readouterr().err and np.load(tmp_path / "s.npy").shape == (1, 20)
    np.save(tmp_path / "sem.npy", np.zeros(60, np.int64))
    assert main(["acoustic", "synthesize", "--preset", "smoke", "--ckpt", str(runs["acoustic"]), "--semantic",
                 str(tmp_path / "sem.npy"), "--prompt", str(GOOD), "--out", str(tmp_path / "a.flac"),
                 "--temperature", "0"]) == 0
    assert "synthesizing" in capsys.readouterr().err and sf.info(str(tmp_path / "a.flac")).frames == 60 * 640


def test_python_calls_are_checked_too(runs):
    """The notebooks call the library directly: the same one-line UserErrors."""
    import torch

    from workbench.acoustic.synthesize import Synthesizer
    from workbench.core.errors import UserError
    from workbench.lm.generate import generate
    from workbench.lm.model import load_model

    model, _ = load_model(runs["lm"])
    prompt = torch.zeros(1, 4, dtype=torch.long)
    for kwargs, message in (({"temperature": float("nan")}, "temperature nan"), ({"top_k": 0}, "top_k 0"),
                            ({"top_p": 1.5}, "top_p 1.5"), ({"seed": 2**64}, "seed")):
        with pytest.raises(UserError, match=message):
            generate(model, prompt, 2, **kwargs)
    synth = Synthesizer.load(runs["acoustic"])
    with pytest.raises(UserError, match="temperature -1"):
        synth.with_decode(temperature=-1)
    with pytest.raises(UserError, match="at most 90000"):
        synth.check_semantic(np.zeros(90_001, np.int64))
