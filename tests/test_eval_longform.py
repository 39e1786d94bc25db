"""Long-form measures: they tell a healthy stream from a looping or collapsed one; SC-L and speaker similarity
over time on real speech; the LLM judge's parsing, request and skip path (a loopback server, no network)."""

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from workbench.core.audio import SAMPLE_RATE, load_audio
from workbench.eval.longform import (
    JUDGE_URL_ENV,
    audio_bins,
    bin_edges,
    collapse_onset_s,
    judge_pair,
    loop_onset_s,
    parse_verdict,
    repeated_ngrams,
    runs,
    semantic_coherence,
    speaker_similarity_over_time,
    token_measures,
)

REAL = Path(__file__).parent / "fixtures" / "real-speech"
RATE = 25


def speechlike(seconds: float, rng: np.random.Generator, vocab: int = 64) -> np.ndarray:
    """Units held for 1-4 frames each, like 25 Hz semantic units, drawn afresh all the time."""
    out = []
    while len(out) < seconds * RATE:
        out += [int(rng.integers(vocab))] * int(rng.integers(1, 5))
    return np.array(out[: int(seconds * RATE)])


def test_bins_cover_the_stream_and_merge_a_short_tail():
    assert bin_edges(150, 60) == [(0, 60), (60, 120), (120, 150)]
    assert bin_edges(121, 60, min_last_s=2) == [(0, 60), (60, 121)]
    assert bin_edges(0, 60) == []
    with pytest.raises(ValueError):
        bin_edges(10, 0)
    wav = np.zeros(int(10.5 * SAMPLE_RATE), dtype=np.float32)
    pieces = audio_bins(wav, 4.0)
    assert [(lo, hi) for lo, hi, _ in pieces] == [(0, 4), (4, 8), (8, 10.5)]
    assert sum(len(p) for *_, p in pieces) == len(wav)


def test_runs_and_repeats():
    units, starts = runs(np.array([3, 3, 7, 7, 7, 3]))
    assert units.tolist() == [3, 7, 3] and starts.tolist() == [0, 2, 5]
    # 1 2 3 1 2 3: the 2-gram (1, 2) recurs 3 tokens later
    at, rep = repeated_ngrams(np.array([1, 2, 3, 1, 2, 3]), n=2, lookback=10)
    assert at.tolist() == [0, 1, 2, 3, 4] and rep.tolist() == [False, False, False, True, True]
    _, rep = repeated_ngrams(np.array([1, 2, 3, 1, 2, 3]), n=2, lookback=2)  # too far back to count
    assert not rep.any()


def test_measures_tell_healthy_from_looping_and_collapsed_streams():
    rng = np.random.default_rng(0)
    prompt = speechlike(10, rng)
    healthy = np.concatenate([prompt, speechlike(120, rng)])
    loop = speechlike(1.48, rng)  # a 37-frame phrase, said over and over from the second minute on
    looping = np.concatenate([prompt, speechlike(60, rng), np.tile(loop, 60 * RATE // len(loop) + 1)[: 60 * RATE]])
    collapsed = np.concatenate([prompt, speechlike(60, rng), np.full(60 * RATE, 5)])

    h = token_measures(healthy, len(prompt), bin_seconds=60)
    lp = token_measures(looping, len(prompt), bin_seconds=60)
    c = token_measures(collapsed, len(prompt), bin_seconds=60)
    assert [b["from_s"] for b in h] == [0, 60] and all(b["tokens"] == 60 * RATE for b in h)
    for b in h:  # fresh units: few repeats, high diversity, near-maximal entropy, short runs
        assert b["repeat_rate"] < 0.05 and b["distinct_n"] > 0.95 and b["entropy_bits"] > 5.5
        assert b["longest_run_s"] < 1.0 and b["stuck_share"] == 0
    assert lp[0]["repeat_rate"] < 0.05  # the first minute is still healthy...
    assert lp[1]["repeat_rate"] > 0.95 and lp[1]["distinct_n"] < 0.05  # ...then every n-gram is a repeat
    assert lp[1]["entropy_bits"] < h[1]["entropy_bits"] - 1.5
    assert loop_onset_s(lp) == 60.0 and loop_onset_s(h) is None
    assert lp[1]["stuck_share"] == 0 and collapse_onset_s(lp) is None  # a loop is not a collapse
    assert c[1]["entropy_bits"] == 0 and c[1]["longest_run_s"] == 60.0 and c[1]["stuck_share"] == 1.0
    assert collapse_onset_s(c) == 60.0 and collapse_onset_s(h) is None and loop_onset_s(c) is None
    # collapsing onto two held units (no single unit fills the bin): caught by the stuck share
    held = np.repeat(np.tile([3, 15], 30), 50)  # 2 s runs alternating between two units
    two = token_measures(np.concatenate([prompt, held]), len(prompt), bin_seconds=60)
    assert two[0]["stuck_share"] == 1.0 and two[0]["entropy_bits"] == 1.0 and collapse_onset_s(two) == 0.0
    assert c[1]["repeat_rate"] is None and c[1]["distinct_n"] is None  # a single run has no n-grams


def test_nll_is_binned_by_the_position_it_scores():
    tokens = np.arange(20) % 7
    nll = np.arange(19, dtype=float)  # nll[i] scores token i + 1
    bins = token_measures(tokens, start=10, bin_seconds=0.2, nll=nll)  # 5-token bins over tokens 10..19
    assert [b["nll"] for b in bins] == [np.mean(nll[9:14]), np.mean(nll[14:19])]
    with pytest.raises(ValueError, match="expected 19"):
        token_measures(tokens, nll=nll[:5])
    with pytest.raises(ValueError, match="outside"):
        token_measures(tokens, start=30)


def test_sc_l_is_higher_on_topic_and_none_where_nothing_is_heard():
    # stand-in ASR and embedder: each bin "hears" a fixed text; embeddings are bag-of-words vectors
    heard = iter(["the old house by the river", "", "stock prices fell on tuesday"])
    vocab = sorted(set("the old house by the river stock prices fell on tuesday near".split()))

    def embed(texts):
        return np.array([[t.split().count(w) + 1e-3 for w in vocab] for t in texts], dtype=float)

    wav = np.random.default_rng(0).normal(0, 0.1, 30 * SAMPLE_RATE).astype(np.float32)
    bins = semantic_coherence(wav, {"prompt": "The house near the river."}, bin_seconds=10,
                              transcribe=lambda piece: next(heard), embed=embed)
    assert [b["from_s"] for b in bins] == [0, 10, 20]
    assert bins[0]["similarity"]["prompt"] > 0.7 > 0.2 > bins[2]["similarity"]["prompt"]
    assert bins[1]["similarity"]["prompt"] is None and "no words" in bins[1]["note"]
    with pytest.raises(ValueError, match="empty"):
        semantic_coherence(wav, {"prompt": "  ..."}, transcribe=lambda p: "x", embed=embed)


def test_sc_l_on_real_speech_with_minilm():
    """JFK's own words are closer to his transcript than to an unrelated sentence (pocketsphinx + MiniLM)."""
    wav = load_audio(REAL / "jfk.flac")
    refs = {"prompt": (REAL / "jfk.txt").read_text(), "other": "The recipe needs two eggs and a cup of flour."}
    bins = semantic_coherence(wav, refs, bin_seconds=60)
    assert len(bins) == 1 and "country" in bins[0]["transcript"]
    assert bins[0]["similarity"]["prompt"] > 0.5 > bins[0]["similarity"]["other"] + 0.2


def test_speaker_similarity_over_time_tracks_a_voice_change(smoke_corpus):
    from workbench.data.loaders import open_dataset

    recs = open_dataset(smoke_corpus).recordings
    female = [r.load() for r in recs if r.speaker == "us1-h"][:2]
    male = next(r.load() for r in recs if r.speaker == "us3-h")
    prompt = female[0][: 3 * SAMPLE_RATE]
    # 8 s of the same voice, then 8 s of another voice, then a silent bin
    wav = np.concatenate([female[1][: 8 * SAMPLE_RATE], male[: 8 * SAMPLE_RATE], np.zeros(8 * SAMPLE_RATE)])
    bins = speaker_similarity_over_time(wav.astype(np.float32), prompt, bin_seconds=8)
    same, other, silent = bins
    assert same["similarity"] > 0.8 and same["similarity"] - other["similarity"] > 0.1, bins
    assert silent["similarity"] is None and "silence" in silent["note"]


def test_judge_verdicts_are_parsed_from_json_fences_and_plain_lines():
    assert parse_verdict('{"winner": "A", "reason": "stays on topic"}') == {"winner": "A", "reason": "stays on topic"}
    fenced = 'Sure.\n```json\n{"winner": "tie", "reason": "both drift"}\n```'
    assert parse_verdict(fenced)["winner"] == "tie"
    assert parse_verdict("After reading both, Winner: B, because A loops.")["winner"] == "B"
    for bad in ("I cannot decide.", '{"winner": "C"}', ""):
        with pytest.raises(ValueError, match="verdict"):
            parse_verdict(bad)


def test_judge_is_skipped_with_its_reason_when_not_configured(monkeypatch):
    monkeypatch.delenv(JUDGE_URL_ENV, raising=False)
    out = judge_pair("prompt", "a", "b")
    assert out["status"] == "skipped" and out["winner"] is None and JUDGE_URL_ENV in out["reason"]


class _Judge(BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Judge.seen.append((self.path, self.headers.get("Authorization"), body))
        reply = _Judge.replies.pop(0)
        if isinstance(reply, tuple):  # ("raw", bytes) | ("sleep", seconds)
            kind, value = reply
            if kind == "sleep":
                time.sleep(value)
                reply = '{"winner": "A"}'
            else:
                data = value
        if isinstance(reply, str):
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_asks_both_orders_and_needs_agreement(judge_server, monkeypatch):
    monkeypatch.setenv("WORKBENCH_JUDGE_API_KEY", "k")
    # asked (griffin, transformer) then (transformer, griffin): griffin wins both times
    _Judge.replies[:] = ['{"winner": "A", "reason": "coherent"}', '{"winner": "B", "reason": "coherent"}']
    out = judge_pair("the prompt", "griffin text", "transformer text", names=("griffin", "transformer"),
                     url=judge_server, model="m")
    assert out["status"] == "ok" and out["winner"] == "griffin" and out["consistent"]
    path, auth, body = _Judge.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k" and body["model"] == "m"
    assert "griffin text" in body["messages"][-1]["content"]
    assert _Judge.seen[1][2]["messages"][-1]["content"].index("transformer text") < \
        _Judge.seen[1][2]["messages"][-1]["content"].index("griffin text")
    # position bias (A both times) is no win
    _Judge.replies[:] = ['{"winner": "A"}', '{"winner": "A"}']
    out = judge_pair("p", "x", "y", url=judge_server)
    assert out["winner"] == "tie" and not out["consistent"]
    # an unparsable reply is reported, not raised
    _Judge.replies[:] = ["no idea"]
    out = judge_pair("p", "x", "y", url=judge_server)
    assert out["status"] == "error" and "verdict" in out["reason"]


def test_judge_refuses_malformed_oversized_and_slow_replies(judge_server):
    """Each bad answer is an error entry with its reason, never an exception or a hang."""
    from workbench.eval.longform import MAX_REPLY_BYTES

    cases = [
        (("raw", b"<html>502 Bad Gateway</html>"), "not JSON"),
        (("raw", b'{"choices": []}'), "choices[0]"),
        (("raw", json.dumps({"choices": [{"message": {"content": ["A"]}}]}).encode()), "non-text"),
        (("raw", b'{"x": "' + b"a" * (MAX_REPLY_BYTES + 10) + b'"}'), "more than"),
        (("sleep", 3.0), "timed out"),
    ]
    for reply, reason in cases:
        _Judge.replies[:] = [reply]
        started = time.monotonic()
        out = judge_pair("p", "x", "y", url=judge_server, timeout=1.0)
        assert out["status"] == "error" and out["winner"] is None and reason in out["reason"], (reason, out)
        assert time.monotonic() - started < 2.9  # the timeout, not the server's sleep
    # the reply after a failure in the second order: both orders are asked, one fails -> an error, not half a verdict
    _Judge.replies[:] = ['{"winner": "A"}', ("raw", b"garbage")]
    out = judge_pair("p", "x", "y", url=judge_server, timeout=1.0)
    assert out["status"] == "error" and len(_Judge.seen) >= 2


def test_judge_speaks_plain_http_only_to_loopback(monkeypatch):
    """Transcripts and the API key never cross a network in the clear: http is refused before any connection
    unless the host is this machine; https is allowed anywhere."""
    from workbench.eval.longform import check_endpoint

    def no_network(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for url in ("http://10.0.0.5:8000/v1", "http://judge.example.org/v1", "ftp://127.0.0.1/v1", "127.0.0.1:8000"):
        out = judge_pair("p", "x", "y", url=url)
        assert out["status"] == "error" and "loopback" in out["reason"], url
    for url in ("http://127.0.0.1:8000/v1", "http://localhost/v1", "http://[::1]:8000/v1", "https://judge.example.org/v1"):
        assert check_endpoint(url) == url


def test_judge_unreachable_endpoint_is_an_error_entry():
    out = judge_pair("p", "x", "y", url="http://127.0.0.1:9/v1", timeout=2)
    assert out["status"] == "error" and out["winner"] is None and "failed" in out["reason"]
