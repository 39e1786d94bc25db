"""One preset vocabulary: smoke, laptop and paper exist in every stage, `reproduce --preset paper` finds what each
notebook needs, and the paper-scale models are built (on the meta device: no memory, no training)."""

import pytest
import torch

from workbench import cli
from workbench.acoustic.model import SoundStorm
from workbench.acoustic.model import count_parameters as acoustic_parameters
from workbench.codec.model import Codec
from workbench.core.config import PRESET_NAMES
from workbench.lm.model import build_model, count_parameters
from workbench.pipeline.reproduce import stage_configs
from workbench.tokenizer.encoder import Encoder
from workbench.tokenizer.model import Tokenizer


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_stage_knows_every_preset(preset):
    configs = stage_configs(preset)
    assert {"corpus", "tokenizer", "lm_griffin", "codec", "acoustic", "extrapolation", "decode"} <= set(configs)


def test_paper_models_build_on_the_meta_device():
    configs = stage_configs("paper")
    griffin = count_parameters(configs["lm_griffin"])["total"]
    assert 1.9e9 < griffin < 2.3e9  # RecurrentGemma-2B's shape with a 32k vocabulary
    assert abs(count_parameters(configs["lm_transformer"])["total"] / griffin - 1) < 0.1
    assert build_model(configs["lm_griffin"], "meta").embedder.weight.is_meta
    codec_cfg = configs["codec"].model
    with torch.device("meta"):
        codec = Codec(codec_cfg)
        storm = SoundStorm(configs["acoustic"].model.for_data(codec_cfg.num_quantizers, codec_cfg.codebook_size,
                                                               configs["tokenizer"].num_units))
        tok = Tokenizer("learned", configs["tokenizer"], torch.zeros(()), torch.ones(()),
                        encoder=Encoder(configs["tokenizer"]))
    assert codec_cfg.kbps() == 6.0 and acoustic_parameters(storm) > 100e6 and acoustic_parameters(codec) > 1e6
    assert tok.num_units == 32768 and sum(p.numel() for p in tok.encoder.parameters()) > 1e6


def test_reproduce_refuses_an_unknown_preset_before_running_anything(tmp_path, capsys):
    assert cli.main(["reproduce", "--preset", "huge", "--reports", str(tmp_path)]) == 2
    assert "unknown" in capsys.readouterr().err and not any(tmp_path.iterdir())
