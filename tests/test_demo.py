"""The demo's pipeline (prompt -> tokens -> Griffin continuation), its errors, and the Gradio app over loopback."""

import socket

import numpy as np
import pytest
import soundfile as sf

from workbench.core.audio import SAMPLE_RATE
from workbench.core.errors import UserError
from workbench.pipeline.demo import build_app, continue_speech, load_pipeline, prompt_audio


@pytest.fixture(scope="module")
def griffin_run(smoke_tokens, tmp_path_factory):
    """A smoke Griffin trained for a few steps on the smoke tokenizer's units."""
    from workbench.core.config import override
    from workbench.lm.config import train_config
    from workbench.lm.model import model_config
    from workbench.lm.train import train

    run = tmp_path_factory.mktemp("demo-lm") / "smoke-griffin"
    train(run, model_config("smoke", "griffin"), override(train_config("smoke"), steps=5), smoke_tokens["tokens"],
          preset="smoke", progress=False)
    return run


@pytest.fixture(scope="module")
def pipe(smoke_tokens, griffin_run):
    return load_pipeline("smoke", tokenizer_dir=smoke_tokens["tokenizer"], lm_run=griffin_run)


def test_continue_a_held_out_recording(pipe, one_torch_thread):
    assert pipe.held_out and all(r.split in ("dev", "test") for r in pipe.held_out.values())
    wav = prompt_audio(pipe, next(iter(pipe.held_out)), None, prompt_seconds=3.0)
    assert len(wav) == 3 * SAMPLE_RATE
    out = continue_speech(pipe, wav, seconds=2.0, temperature=1.0, seed=1)
    assert len(out["prompt_tokens"]) == 75 and len(out["continuation"]) == 50
    assert out["continuation"].max() < pipe.tokenizer.num_units < pipe.model.config.vocab_size  # units only
    assert out["audio"] is None and "no audio" in out["note"]
    again = continue_speech(pipe, wav, seconds=2.0, temperature=1.0, seed=1)
    assert (again["continuation"] == out["continuation"]).all()  # seeded


def test_bad_prompts_are_clear_errors(pipe, tmp_path):
    rec = next(iter(pipe.held_out))
    with pytest.raises(UserError, match="at least 2 s"):
        prompt_audio(pipe, None, (SAMPLE_RATE, np.full(SAMPLE_RATE, 0.1, dtype=np.float32)), 5.0)
    with pytest.raises(UserError, match="silence"):
        prompt_audio(pipe, None, (SAMPLE_RATE, np.zeros(4 * SAMPLE_RATE, dtype=np.int16)), 5.0)
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(UserError, match="not a readable audio file"):
        prompt_audio(pipe, None, str(corrupt), 5.0)
    with pytest.raises(UserError, match="unknown recording"):
        prompt_audio(pipe, "no-such-recording", None, 5.0)
    with pytest.raises(UserError, match="no prompt"):
        prompt_audio(pipe, None, None, 5.0)
    with pytest.raises(UserError, match="prompt length"):
        prompt_audio(pipe, rec, None, 0.5)
    wav = prompt_audio(pipe, rec, None, 3.0)
    with pytest.raises(UserError, match="continuation length"):
        continue_speech(pipe, wav, seconds=10_000)
    # an upload at another rate, as int16 from a browser, is converted
    int16 = (np.sin(np.arange(4 * 8000) / 5) * 8000).astype(np.int16)
    assert len(prompt_audio(pipe, None, (8000, int16), 5.0)) == 4 * SAMPLE_RATE


def test_missing_or_mismatched_checkpoints_name_the_command(tmp_path, smoke_tokens):
    with pytest.raises(UserError, match="python -m workbench tokenizer train --preset smoke"):
        load_pipeline("smoke", tokenizer_dir=tmp_path / "nothing", lm_run=tmp_path / "none")
    with pytest.raises(UserError, match="python -m workbench lm train --preset smoke --model griffin"):
        load_pipeline("smoke", tokenizer_dir=smoke_tokens["tokenizer"], lm_run=tmp_path / "none")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_serves_one_request_over_loopback(smoke_tokens, griffin_run, tmp_path, one_torch_thread):
    from gradio_client import Client

    app = build_app("smoke", tokenizer_dir=smoke_tokens["tokenizer"], lm_run=griffin_run)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path))
        recording = sorted(load_pipeline("smoke", tokenizer_dir=smoke_tokens["tokenizer"],
                                         lm_run=griffin_run).held_out)[0]
        prompt, continuation, plot, note = client.predict(recording, None, 3.0, 2.0, 1.0, 0,
                                                          api_name="/continue_speech")
        wav, sr = sf.read(prompt)
        assert sr == SAMPLE_RATE and abs(len(wav) - 3 * SAMPLE_RATE) < 10
        assert continuation is None and "50 tokens" in note and plot
        with pytest.raises(Exception, match="no prompt"):  # a UserError arrives as the UI's error message
            client.predict(None, None, 3.0, 2.0, 1.0, 0, api_name="/continue_speech")
    finally:
        app.close()


def test_app_starts_and_reports_missing_checkpoints(tmp_path):
    app = build_app("smoke", tokenizer_dir=tmp_path / "nothing", lm_run=tmp_path / "none")
    text = " ".join(getattr(b, "value", "") or "" for b in app.blocks.values() if isinstance(getattr(b, "value", None), str))
    assert "Not ready" in text and "tokenizer train --preset smoke" in text


def test_continuation_is_rendered_in_the_prompts_voice(smoke_tokens, griffin_run, smoke_acoustic, one_torch_thread):
    pipe = load_pipeline("smoke", tokenizer_dir=smoke_tokens["tokenizer"], lm_run=griffin_run,
                         acoustic_run=smoke_acoustic)
    wav = prompt_audio(pipe, next(iter(pipe.held_out)), None, prompt_seconds=3.0)
    out = continue_speech(pipe, wav, seconds=2.0, seed=1)
    assert out["audio"] is not None and abs(len(out["audio"]) - 2 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    assert np.isfinite(out["audio"]).all() and "acoustic stage" in out["note"]
