"""Long-form extrapolation job: cache traces (Griffin constant, the Transformer growing), settings, missing runs."""

import numpy as np
import pytest
import torch

from workbench.cli import UserError, main
from workbench.lm.config import model_config
from workbench.lm.extrapolate import ExtrapolationConfig, continue_tracked, extrapolation_config
from workbench.lm.model import build_model


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


def test_absurd_settings_are_refused():
    with pytest.raises(UserError, match="more than 120 minutes"):
        extrapolation_config("laptop", minutes=10_000)
    with pytest.raises(UserError, match="minutes must be positive"):
        extrapolation_config("smoke", minutes=0)
    with pytest.raises(UserError, match="unknown extrapolation preset"):
        extrapolation_config("huge")
    assert extrapolation_config("laptop").minutes == 16.0


def test_missing_runs_name_the_training_command(tmp_path, capsys):
    assert main(["lm", "extrapolate", "--preset", "smoke", "--runs", str(tmp_path), "--no-train"]) == 2
    err = capsys.readouterr().err
    assert "python -m workbench lm train --preset smoke --model griffin" in err


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
