"""Long-form extrapolation job: cache traces (Griffin constant, the Transformer growing), settings, missing runs."""

import json

import numpy as np
import pytest
import torch

from workbench.cli import UserError, main
from workbench.lm.model import build_model, model_config
from workbench.pipeline.extrapolate import ExtrapolationConfig, continue_tracked, extrapolation_config


@pytest.mark.parametrize("kind", ["griffin", "transformer"])
def test_continue_tracked_records_the_cache_as_it_grows(kind, one_torch_thread):
    torch.manual_seed(0)
    model = build_model(model_config("smoke", kind)).eval()
    prompt = torch.randint(0, 64, (1, 20))
    cfg = ExtrapolationConfig(minutes=0.1, record_every_s=0.4)  # a sample every 10 tokens
    out = continue_tracked(model, prompt, 60, cfg, progress=False)
    assert out["tokens"].shape == (80,) and (out["tokens"][:20] == prompt[0].numpy()).all()
    assert [c["generated"] for c in out["cache"]] == [0, 10, 20, 30, 40, 50, 59]
    sizes = np.array([c["cache_bytes"] for c in out["cache"]])
    if kind == "griffin":  # constant: RG-LRU state, conv buffer, a ring buffer of the attention window
        assert (sizes == sizes[0]).all()
    else:  # one KV slot more per token: 79 slots at the end against 20 after the prefill
        assert (np.diff(sizes) > 0).all() and sizes[-1] / sizes[0] == pytest.approx(79 / 20, rel=0.02)
    assert all(c["tokens_per_s"] > 0 for c in out["cache"][1:])


def test_a_continuation_reports_to_reproduces_terminal(tmp_path, monkeypatch, one_torch_thread):
    """Inside `make reproduce` (WORKBENCH_PROGRESS set) a long continuation says how far it is."""
    from workbench.core import progress

    log = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(log))
    torch.manual_seed(0)
    model = build_model(model_config("smoke", "griffin")).eval()
    continue_tracked(model, torch.randint(0, 64, (1, 8)), 500, ExtrapolationConfig(minutes=0.5), desc="griffin",
                     progress=False)
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert records[-1]["stage"] == "griffin" and records[-1]["done"] == records[-1]["total"] == 500
    assert records[-1]["unit"] == "token" and records[-1]["eta_s"] == 0


def test_absurd_settings_are_refused():
    with pytest.raises(UserError, match="more than 120 minutes"):
        extrapolation_config("laptop", minutes=10_000)
    with pytest.raises(UserError, match="minutes must be positive"):
        extrapolation_config("smoke", minutes=0)
    with pytest.raises(UserError, match="unknown extrapolation preset"):
        extrapolation_config("huge")
    assert extrapolation_config("laptop").minutes == 16.0


def test_missing_runs_name_the_training_command(tmp_path, capsys):
    assert main(["extrapolate", "--preset", "smoke", "--runs", str(tmp_path), "--no-train"]) == 2
    err = capsys.readouterr().err
    assert "python -m workbench lm train --preset smoke --model griffin" in err


@pytest.mark.slow  # ~55 s: renders and transcribes four 15 s clips
def test_continuations_are_rendered_and_measured(tmp_path, smoke_tokens, smoke_acoustic, monkeypatch,
                                                 one_torch_thread):
    import soundfile as sf

    from workbench.eval.longform import JUDGE_URL_ENV
    from workbench.pipeline.extrapolate import run_extrapolation

    monkeypatch.delenv(JUDGE_URL_ENV, raising=False)
    payload, _ = run_extrapolation("smoke", extrapolation_config("smoke"), runs=tmp_path / "runs",
                                   tokens=smoke_tokens["tokens"], acoustic_run=smoke_acoustic, reports=tmp_path,
                                   progress=False, log=lambda m: None)
    audio = payload["audio"]
    assert set(audio) == {"ground_truth", "griffin", "griffin_end", "transformer", "transformer_end"}
    for name in ("griffin", "griffin_end", "transformer"):
        entry = audio[name]
        assert entry["status"] == "ok", entry
        wav, sr = sf.read(entry["audio"])
        assert abs(len(wav) / sr - 15.0) < 0.1  # smoke: the first 15 s, and the last 15 s of the 30
        assert len(entry["speaker_similarity"]) == 3  # 5 s bins
    assert audio["griffin"]["offset_s"] == 0 and audio["griffin_end"]["offset_s"] == 15.0
    assert payload["llm_judge"]["status"] == "skipped" and payload["llm_judge"]["winner"] is None
    # the voice over the whole set: every stream of both models rendered in its own prompt's voice
    set_ = payload["set"]
    for name in ("griffin", "transformer"):
        streams = set_["streams"][name]
        assert len(streams) == 4 and all(len(s["speaker_similarity"]) == 3 for s in streams)  # 15 s in 5 s bins
        assert all("tokens" not in s for s in streams)
        bins = set_["summary"][name]["speaker_similarity"]
        assert [b["n"] for b in bins] == [4, 4, 4] and all(-1 <= b["mean"] <= 1 for b in bins)
        assert set_["claims"]["drift"][name]["speaker_similarity"]["verdict"] in ("flat", "drifts")
    json.dumps(payload)  # no arrays left in the payload


def test_render_is_refused_for_tokens_of_another_tokenizer(tmp_path, smoke_acoustic):
    from workbench.lm.data import SYNTHETIC_PRESETS, write_synthetic_tokens
    from workbench.pipeline.extrapolate import acoustic_renderer

    other = write_synthetic_tokens(tmp_path / "tokens", SYNTHETIC_PRESETS["smoke"])
    render, why = acoustic_renderer("smoke", other, smoke_acoustic)
    assert render is None and "not units of the acoustic model's tokenizer" in why
    render, why = acoustic_renderer("smoke", None, tmp_path / "no-run")
    assert render is None and "python -m workbench acoustic train --preset smoke" in why


def test_only_units_of_the_tokenizer_are_sampled(one_torch_thread):
    from workbench.lm.generate import sample_next

    logits = torch.zeros(4, 64)
    logits[:, 40:] = 10.0  # the model prefers ids the tokenizer does not have
    picks = sample_next(logits, torch.Generator().manual_seed(0), num_units=32)
    assert (picks < 32).all()
    assert (sample_next(logits, torch.Generator().manual_seed(0), temperature=0, num_units=32) < 32).all()
    torch.manual_seed(0)
    model = build_model(model_config("smoke", "griffin")).eval()
    out = continue_tracked(model, torch.randint(0, 8, (1, 10)), 200, ExtrapolationConfig(), progress=False, num_units=8)
    assert out["tokens"].max() < 8


def test_worker_processes_decode_the_same_streams(tmp_path, smoke_tokens):
    """Two decoding processes (one per core on the laptop) give the tokens and measures of one, stream for stream."""
    from workbench.core.config import override
    from workbench.pipeline.extrapolate import run_extrapolation

    cfg = extrapolation_config("smoke", minutes=0.2, transformer_minutes=0.1, set_minutes=0.1)
    results = {}
    for workers in (1, 2):
        results[workers] = run_extrapolation("smoke", override(cfg, workers=workers), runs=tmp_path / "runs",
                                             tokens=smoke_tokens["tokens"], audio=False, reports=tmp_path / "r",
                                             progress=False, log=lambda m: None)
    (serial, serial_streams), (pooled, pooled_streams) = results[1], results[2]
    assert serial["machine"]["generation_workers"] == 1 and pooled["machine"]["generation_workers"] == 2
    assert set(serial_streams) == set(pooled_streams) and len(serial_streams) == 9  # 4 streams x 2 models + truth
    for name, tokens in serial_streams.items():
        assert np.array_equal(tokens, pooled_streams[name]), name
    for name in ("griffin", "transformer"):
        assert serial["models"][name]["generated_tokens"] == pooled["models"][name]["generated_tokens"]
        assert serial["models"][name]["measures"] == pooled["models"][name]["measures"]
    assert serial["set"]["claims"] == pooled["set"]["claims"]


def test_workers_must_be_a_whole_number():
    with pytest.raises(UserError, match="workers must be a whole number >= 1"):
        extrapolation_config("smoke", workers=0)
