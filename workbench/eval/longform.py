"""Long-form measures (SpeechSSM's evaluation of minutes-long continuations), stratified over time.

Everything here is a pure function of a token stream or of audio, cut into bins of `bin_seconds` measured from
the start of the continuation (the paper stratifies by minute):

- `token_measures`: how healthy a generated stream of semantic units is, bin by bin. Long-form generation
  classically fails by *degenerating*: it falls into a loop (the same few units over and over) or collapses
  onto one unit (endless silence). Per bin:
    * `repeat_rate`   fraction of the bin's deduplicated n-grams (runs of one unit collapsed, n = 4) already seen
                      within the previous `lookback_s` seconds. A loop of any period shorter than the lookback
                      drives it to 1; fresh speech keeps it low (the odd repeated word).
    * `distinct_n`    distinct deduplicated n-grams / n-grams in the bin (loops: period / bin length).
    * `entropy_bits`  unigram entropy of the bin's units (collapse: 0; a loop: about log2 of its period).
    * `longest_run_s` the longest run of one identical unit (a stuck unit: the whole bin).
    * `stuck_share`   the share of the bin spent in runs of one unit longer than `stuck_s` (1 s): a stream that
                      collapses onto a few held units without looping (real speech: ~0).
    * `nll`           mean NLL of the bin's tokens under a reference LM, when per-token NLLs are given
                      (`workbench.lm.evaluate.position_nll`); loops are typically *more* likely, not less, so the
                      NLL alone does not detect them -- hence the measures above.
  `loop_onset_s` and `collapse_onset_s` summarise a stream: the start of the first bin whose repeat rate (stuck
  share) reaches a threshold.
- `semantic_coherence` (SC-L): each bin's ASR transcript embedded with MiniLM, cosine to the transcript of the
  prompt (and of the ground-truth continuation) -- does the speech stay on topic as it goes on?
- `speaker_similarity_over_time`: resemblyzer cosine of each bin's audio to the speaker prompt -- does the voice
  drift?
- `judge_pair`: an LLM-as-judge side-by-side comparison of two continuations' transcripts, only when an
  OpenAI-compatible endpoint is configured (WORKBENCH_JUDGE_URL); otherwise it reports itself skipped, with why.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from workbench.core.audio import SAMPLE_RATE
from workbench.eval.units import unit_entropy

TOKENS_PER_SECOND = 25
LOOP_THRESHOLD = 0.8
COLLAPSE_THRESHOLD = 0.25  # a quarter of the bin held on single units for over a second each


# ------------------------------------------------------------------------------------------------- bins


def bin_edges(seconds: float, bin_seconds: float, min_last_s: float = 0.0) -> list[tuple[float, float]]:
    """[(from_s, to_s)] covering [0, seconds) in steps of `bin_seconds`; a last partial bin shorter than
    `min_last_s` is merged into the one before it."""
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be positive, got {bin_seconds}")
    if seconds <= 0:
        return []
    edges = [(float(lo), float(min(lo + bin_seconds, seconds))) for lo in np.arange(0.0, seconds, bin_seconds)]
    if len(edges) > 1 and edges[-1][1] - edges[-1][0] < min_last_s:
        (lo, _), (_, hi) = edges[-2], edges.pop()
        edges[-1] = (lo, hi)
    return edges


# ------------------------------------------------------------------------------------------- token streams


def runs(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length form of a 1-D stream: (unit of each run, index of its first token)."""
    tokens = np.asarray(tokens)
    if len(tokens) == 0:
        return tokens, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])
    return tokens[starts], starts


def repeated_ngrams(tokens: np.ndarray, n: int, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """For each deduplicated n-gram of the stream: (index of its first token, whether the same n-gram started
    at most `lookback` tokens before it)."""
    units, starts = runs(tokens)
    count = max(0, len(units) - n + 1)
    repeated = np.zeros(count, dtype=bool)
    last: dict[tuple, int] = {}
    for j in range(count):
        gram = tuple(units[j: j + n].tolist())
        seen = last.get(gram)
        repeated[j] = seen is not None and starts[j] - seen <= lookback
        last[gram] = int(starts[j])
    return starts[:count], repeated


def run_lengths(tokens: np.ndarray) -> np.ndarray:
    _, starts = runs(tokens)
    return np.diff(np.r_[starts, len(tokens)])


def token_measures(tokens: Sequence[int] | np.ndarray, start: int = 0, *, bin_seconds: float = 60.0,
                   rate: int = TOKENS_PER_SECOND, n: int = 4, lookback_s: float = 10.0, stuck_s: float = 1.0,
                   nll: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per-bin health of a semantic stream. `tokens` is the whole stream (prompt, then continuation);
    bins cover tokens[start:] and their times are seconds from `start`. The prompt still counts as history for
    `repeat_rate`. `nll`, if given, is per token of the stream: nll[i] scores tokens[i + 1] (as `position_nll`
    returns it), so its length is len(tokens) - 1."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tokens.shape}")
    if not 0 <= start <= len(tokens):
        raise ValueError(f"start {start} is outside the stream of {len(tokens)} tokens")
    if nll is not None and len(nll) != len(tokens) - 1:
        raise ValueError(f"nll has {len(nll)} entries for {len(tokens)} tokens (expected {len(tokens) - 1})")
    gram_at, repeated = repeated_ngrams(tokens, n, int(lookback_s * rate))
    out = []
    for lo_s, hi_s in bin_edges((len(tokens) - start) / rate, bin_seconds):
        lo, hi = start + round(lo_s * rate), start + round(hi_s * rate)
        piece = tokens[lo:hi]
        units, _ = runs(piece)
        lengths = run_lengths(piece)
        grams = {tuple(units[j: j + n].tolist()) for j in range(len(units) - n + 1)}
        in_bin = (gram_at >= lo) & (gram_at < hi)
        row = {
            "from_s": lo_s, "to_s": hi_s, "tokens": int(len(piece)),
            "repeat_rate": float(repeated[in_bin].mean()) if in_bin.any() else None,
            "distinct_n": len(grams) / (len(units) - n + 1) if len(units) >= n else None,
            "entropy_bits": unit_entropy(piece),
            "longest_run_s": int(lengths.max()) / rate,
            "stuck_share": float(lengths[lengths > stuck_s * rate].sum() / len(piece)),
        }
        if nll is not None:  # NLL of tokens lo..hi-1 sits at nll[lo-1 .. hi-2]
            scored = np.asarray(nll)[max(lo - 1, 0): hi - 1]
            row["nll"] = float(scored.mean()) if len(scored) else None
        out.append(row)
    return out


def onset_s(bins: Sequence[Mapping[str, Any]], key: str, threshold: float) -> float | None:
    """Start (s) of the first bin whose `key` reaches `threshold`, or None."""
    for b in bins:
        if b.get(key) is not None and b[key] >= threshold:
            return float(b["from_s"])
    return None


def loop_onset_s(bins: Sequence[Mapping[str, Any]], threshold: float = LOOP_THRESHOLD) -> float | None:
    """Where the stream fell into a loop: the first bin whose repeat rate reaches `threshold`."""
    return onset_s(bins, "repeat_rate", threshold)


def collapse_onset_s(bins: Sequence[Mapping[str, Any]], threshold: float = COLLAPSE_THRESHOLD) -> float | None:
    """Where the stream collapsed onto held units: the first bin whose stuck share reaches `threshold`."""
    return onset_s(bins, "stuck_share", threshold)


# ------------------------------------------------------------------------------------------------- audio


def audio_bins(wav: np.ndarray, bin_seconds: float, sample_rate: int = SAMPLE_RATE,
               min_last_s: float = 2.0) -> list[tuple[float, float, np.ndarray]]:
    """(from_s, to_s, samples) for each bin of `wav`; a last bin shorter than `min_last_s` joins the previous."""
    return [(lo, hi, wav[round(lo * sample_rate): round(hi * sample_rate)])
            for lo, hi in bin_edges(len(wav) / sample_rate, bin_seconds, min_last_s)]


def semantic_coherence(wav: np.ndarray, references: Mapping[str, str], *, bin_seconds: float = 60.0,
                       sample_rate: int = SAMPLE_RATE, transcribe: Callable[[np.ndarray], str] | None = None,
                       embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> list[dict[str, Any]]:
    """SC-L: per bin of `wav`, its transcript and the cosine of its sentence embedding to each reference text
    (e.g. {"prompt": prompt transcript, "ground_truth": the real continuation's}). A bin in which ASR hears no
    word has no similarity (None), and says so."""
    from workbench.eval.asr import normalize_text

    if transcribe is None:
        from workbench.eval.asr import transcribe
    if embed is None:
        from workbench.eval.semantic import embed_texts as embed
    refs = {name: normalize_text(text) for name, text in references.items()}
    if empty := [name for name, text in refs.items() if not text]:
        raise ValueError(f"reference transcript(s) {empty} are empty: nothing to compare against")
    bins = [{"from_s": lo, "to_s": hi, "transcript": transcribe(piece)}
            for lo, hi, piece in audio_bins(wav, bin_seconds, sample_rate)]
    heard = [b for b in bins if b["transcript"]]
    vectors = embed(list(refs.values()) + [b["transcript"] for b in heard]) if heard else None
    for b in bins:
        b["words"] = len(b["transcript"].split())
        b["similarity"] = {name: None for name in refs}
        if not b["transcript"]:
            b["note"] = "ASR heard no words in this bin"
    for k, b in enumerate(heard):
        v = vectors[len(refs) + k]
        for i, name in enumerate(refs):
            b["similarity"][name] = _cosine(vectors[i], v)
    return bins


def speaker_similarity_over_time(wav: np.ndarray, prompt_wav: np.ndarray, *, bin_seconds: float = 60.0,
                                 sample_rate: int = SAMPLE_RATE,
                                 embed: Callable[[np.ndarray], np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Per bin of `wav`: cosine of its speaker embedding to the prompt's. A bin with too little speech for an
    embedding gets None and the reason."""
    if embed is None:
        from workbench.eval.speaker import speaker_embedding as embed
    reference = embed(prompt_wav)
    out = []
    for lo, hi, piece in audio_bins(wav, bin_seconds, sample_rate):
        row: dict[str, Any] = {"from_s": lo, "to_s": hi}
        try:
            row["similarity"] = _cosine(reference, embed(piece))
        except ValueError as err:  # silence, too little speech
            row["similarity"], row["note"] = None, str(err)
        out.append(row)
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ------------------------------------------------------------------------------------------- LLM as judge

JUDGE_URL_ENV = "WORKBENCH_JUDGE_URL"  # base of an OpenAI-compatible API, e.g. http://host:8000/v1
JUDGE_MODEL_ENV = "WORKBENCH_JUDGE_MODEL"
JUDGE_KEY_ENV = "WORKBENCH_JUDGE_API_KEY"  # optional bearer token
JUDGE_NOT_CONFIGURED = f"no LLM judge configured (set {JUDGE_URL_ENV} to an OpenAI-compatible API base URL)"

JUDGE_SYSTEM = ("You compare two continuations of the same spoken passage. The texts are automatic transcripts "
                "of speech, so ignore spelling, punctuation and recognition errors. Judge which continuation "
                "follows on from the prompt more coherently and stays more fluent and on topic as it goes on.")


def judge_messages(prompt_text: str, first: str, second: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": (
                f"Prompt:\n{prompt_text}\n\nContinuation A:\n{first}\n\nContinuation B:\n{second}\n\n"
                'Answer with one JSON object and nothing else: {"winner": "A" | "B" | "tie", '
                '"reason": "<one sentence>"}')}]


def parse_verdict(reply: str) -> dict[str, str]:
    """The judge's reply -> {"winner": "A" | "B" | "tie", "reason": ...}. Accepts the JSON object (also inside
    a code fence or surrounded by prose) or a plain "Winner: A" line; anything else is a ValueError."""
    for match in re.finditer(r"\{[^{}]*\}", reply, flags=re.S):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        winner = str(obj.get("winner", "")).strip().strip(".").lower() if isinstance(obj, dict) else ""
        if winner in ("a", "b", "tie"):
            return {"winner": winner.upper() if winner != "tie" else "tie", "reason": str(obj.get("reason", ""))}
    line = re.search(r"winner\W*\s*(?:is\s+)?(?:continuation\s+)?\b(A|B|tie)\b", reply, flags=re.I)
    if line:
        w = line.group(1)
        return {"winner": "tie" if w.lower() == "tie" else w.upper(), "reason": reply.strip()[:500]}
    raise ValueError(f"cannot find a verdict (A, B or tie) in the judge's reply: {reply[:200]!r}")


MAX_REPLY_BYTES = 1 << 20  # a chat completion is a few kB; more is a misconfigured or hostile endpoint
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_endpoint(url: str) -> str:
    """The judge's base URL, if it may be used: https anywhere, plain http only to this machine (transcripts
    and a bearer token never cross a network in the clear). Anything else is a ValueError naming the URL."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return url
    if parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS:
        return url
    raise ValueError(f"judge URL {url!r}: use https, or plain http only to a loopback address "
                     f"({', '.join(LOOPBACK_HOSTS)})")


def chat(url: str, model: str, messages: list[dict[str, str]], api_key: str | None = None,
         timeout: float = 60.0) -> str:
    """One OpenAI-compatible chat completion (POST {url}/chat/completions, temperature 0): the reply text. A reply
    over `MAX_REPLY_BYTES`, not JSON, or without a message is a ValueError; a slow one a timeout (OSError)."""
    endpoint = check_endpoint(url).rstrip("/") + "/chat/completions"
    body = json.dumps({"model": model, "messages": messages, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read(MAX_REPLY_BYTES + 1)
    if len(raw) > MAX_REPLY_BYTES:
        raise ValueError(f"{endpoint} answered with more than {MAX_REPLY_BYTES} bytes")
    try:
        payload = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{endpoint} answered with something that is not JSON: {raw[:200]!r}") from None
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"{endpoint} answered without choices[0].message.content: {str(payload)[:200]}") from None
    if not isinstance(content, str):
        raise ValueError(f"{endpoint} answered with a non-text message: {str(content)[:200]}")
    return content


def judge_pair(prompt_text: str, a: str, b: str, *, names: tuple[str, str] = ("a", "b"),
               url: str | None = None, model: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Side-by-side LLM judgement of two continuations' transcripts, asked in both orders (a judge favours a
    position); the winner is the one chosen both times, else "tie". Never raises for a missing or failing
    endpoint: returns {"status": "skipped" | "error", "winner": None, "reason": ...} instead."""
    url = url or os.environ.get(JUDGE_URL_ENV)
    if not url:
        return {"status": "skipped", "winner": None, "reason": JUDGE_NOT_CONFIGURED}
    model = model or os.environ.get(JUDGE_MODEL_ENV) or "default"
    key = os.environ.get(JUDGE_KEY_ENV)
    verdicts = []
    try:
        for first, second, flip in ((a, b, False), (b, a, True)):
            v = parse_verdict(chat(url, model, judge_messages(prompt_text, first, second), key, timeout))
            if flip and v["winner"] != "tie":
                v["winner"] = "B" if v["winner"] == "A" else "A"
            verdicts.append(v)
    except (urllib.error.URLError, OSError, ValueError) as err:
        return {"status": "error", "winner": None, "reason": f"LLM judge at {url} failed: {err}"}
    both = {v["winner"] for v in verdicts}
    winner = names[0] if both == {"A"} else names[1] if both == {"B"} else "tie"
    return {"status": "ok", "winner": winner, "model": model, "consistent": len(both) == 1,
            "verdicts": verdicts, "reason": verdicts[0]["reason"]}


# ------------------------------------------------------------------------------------ audio, all together


def audio_measures(wav: np.ndarray, prompt_wav: np.ndarray, *, bin_seconds: float = 60.0,
                   references: Mapping[str, str] | None = None, sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """SC-L and speaker similarity over time of a continuation `wav` that followed `prompt_wav`. The prompt's
    transcript (by the same ASR) is the SC-L reference, plus any `references` given (e.g. the ground truth's)."""
    from workbench.eval.asr import transcribe

    prompt_text = transcribe(prompt_wav, sample_rate)
    refs = {"prompt": prompt_text, **(references or {})}
    usable = {k: v for k, v in refs.items() if v.strip()}
    out: dict[str, Any] = {"prompt_transcript": prompt_text, "seconds": len(wav) / sample_rate,
                           "bin_seconds": bin_seconds}
    if usable:
        out["sc_l"] = semantic_coherence(wav, usable, bin_seconds=bin_seconds, sample_rate=sample_rate)
    else:
        out["sc_l"], out["sc_l_note"] = None, "ASR heard no words in the prompt: SC-L has no reference"
    out["speaker_similarity"] = speaker_similarity_over_time(wav, prompt_wav, bin_seconds=bin_seconds,
                                                             sample_rate=sample_rate)
    return out
