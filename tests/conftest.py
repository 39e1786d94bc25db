import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FIXTURES = Path(__file__).parent / "fixtures"
REAL_SPEECH = FIXTURES / "real-speech"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

NO_GPU = "no CUDA device visible: make test-gpu needs a GPU"


def pytest_collection_finish(session):
    """Tests marked `gpu` were selected (`make test-gpu`, `-m gpu`) but torch sees no CUDA device: stop with one
    line and a non-zero exit instead of skipping them all and reporting success."""
    if any(item.get_closest_marker("gpu") for item in session.items):
        import torch

        if not torch.cuda.is_available():
            pytest.exit(NO_GPU, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and a shared CPU is not oversubscribed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory) -> Path:
    """The smoke-preset SynthBooks-Long corpus, built once per test session (a few seconds)."""
    from workbench.data.corpus import build_preset

    out = tmp_path_factory.mktemp("corpus") / "smoke"
    build_preset("smoke", out, jobs=2, progress=False)
    return out


@pytest.fixture
def librispeech_tree(tmp_path) -> Path:
    """A LibriSpeech-layout folder (<split>/<speaker>/<chapter>/<utt>.flac + <spk>-<ch>.trans.txt) from real clips."""
    root = tmp_path / "LibriSpeech"
    for name in ("19-198-0000", "26-495-0000"):
        spk, ch, _ = name.split("-")
        d = root / "dev-clean" / spk / ch
        d.mkdir(parents=True)
        shutil.copy(REAL_SPEECH / f"{name}.flac", d / f"{name}.flac")
        (d / f"{spk}-{ch}.trans.txt").write_text(f"{name} SOME TRANSCRIPT FOR {name}\n")
    return root


@pytest.fixture
def librispeech_long_tree(tmp_path) -> Path:
    """A LibriSpeech-Long-layout folder: speaker/chapter tree, one .txt transcript beside each flac."""
    root = tmp_path / "librispeech_long"
    d = root / "test-clean" / "19" / "198"
    d.mkdir(parents=True)
    a, _ = sf.read(REAL_SPEECH / "19-198-0000.flac")
    b, _ = sf.read(REAL_SPEECH / "26-495-0000.flac")
    sf.write(d / "19-198-0000.flac", np.concatenate([a, b]), 16000)  # a longer contiguous example
    (d / "19-198-0000.txt").write_text("A LONGER EXAMPLE\n")
    return root


@pytest.fixture(scope="session")
def smoke_tokenizer(smoke_corpus, tmp_path_factory) -> Path:
    """A learned smoke tokenizer trained in seconds (no cross-speaker renderings, a few steps): for stages that
    only need *a* tokenizer (SoundStorm's tests), not a good one."""
    import torch

    from workbench.core.config import override
    from workbench.tokenizer.config import PRESETS
    from workbench.tokenizer.train import train_tokenizers

    before = torch.get_num_threads()
    cfg = override(PRESETS["smoke"], max_minutes=0.1, parallel_weight=0.0, steps=5, threads=1, kmeans_seconds=40.0,
                   norm_seconds=20.0)
    out = tmp_path_factory.mktemp("tokenizer") / "learned"
    train_tokenizers(smoke_corpus, cfg, log=lambda m: None)["learned"].save(out)
    torch.set_num_threads(before)
    return out


@pytest.fixture(scope="session")
def smoke_tokens(smoke_corpus, smoke_tokenizer, tmp_path_factory) -> dict:
    """The smoke corpus encoded with `smoke_tokenizer` into an LM token folder (tokens.json names the corpus)."""
    import torch

    from workbench.tokenizer.encode import encode_corpus
    from workbench.tokenizer.model import Tokenizer

    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp("speech-tokens")
    encode_corpus(Tokenizer.load(smoke_tokenizer), smoke_corpus, out, progress=False)
    torch.set_num_threads(before)  # encoding sets the tokenizer's thread count
    return {"corpus": smoke_corpus, "tokenizer": smoke_tokenizer, "tokens": out}


@pytest.fixture(scope="session")
def smoke_codec(tmp_path_factory, smoke_corpus):
    """A smoke codec trained for 10 steps (SoundStorm's tests only need its codes)."""
    from workbench.codec.config import PRESETS as CODEC
    from workbench.codec.train import train as train_codec
    from workbench.core.config import override

    out = tmp_path_factory.mktemp("codec") / "run"
    train_codec(out, CODEC["smoke"].model, override(CODEC["smoke"].train, steps=10, adversarial=False), smoke_corpus,
                progress=False)
    return out


@pytest.fixture(scope="session")
def smoke_acoustic(tmp_path_factory, smoke_corpus, smoke_tokenizer, smoke_codec):
    """A smoke SoundStorm trained in seconds on the smoke codec and the smoke tokenizer's units."""
    from workbench.acoustic.config import PRESETS as ACOUSTIC
    from workbench.acoustic.train import train as train_acoustic

    root = tmp_path_factory.mktemp("acoustic")
    train_acoustic(root / "run", ACOUSTIC["smoke"], smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs",
                   progress=False, preset_name="smoke")
    return root / "run"
