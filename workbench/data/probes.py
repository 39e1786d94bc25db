"""Zero-shot probe sets for the speech LM, synthesized here from the corpus's own texts and voices.

Each set is a list of *pairs* of spoken items, one real and one changed, with a chance level of 50%: a language
model that learned the language should give the real item the higher likelihood. Every pair is read by one voice
(both members), the two members fall in the same length class, and they differ only by the intended change.

    lexical     (sWUGGY-like) a word against a non-word with the same number of phones, the same stress
                pattern and phone bigrams attested in the lexicon, made on espeak-ng's phone strings by
                substituting phones of the same class (vowel for vowel, consonant for consonant) and spoken --
                both members -- through espeak-ng's phoneme input ``[[...]]``; over frequent and rare words
                (counted over what the preset's LM trains on).
    syntactic   (sBLIMP-like) a held-out sentence against a minimally changed ungrammatical one: subject-verb
                agreement ("they are" -> "they is"), word order ("of the house" -> "of house the"),
                determiner-noun agreement ("this morning" -> "these morning").
    story       (tStoryCloze-like) `story_sentences` sentences of a held-out chapter, then its true next
                sentence against a sentence of another held-out chapter of the same length class. The prefix
                is rendered once, so it is the same audio in both members.
    long_story  the same with prefixes of `context_seconds` (10 s, 1, 4 and 8 minutes at laptop: far beyond
                the LM's training window), all cut from one rendering of the chapter before the cut, so each
                item has the same two endings at every context length.

Held out: the texts come from chapters the preset's LM never trains on (the corpus plan's dev/test chapters
first, then chapters the preset does not read at all), and every item is read by the held-out voices of the
corpus or by `UNSEEN_VOICE`, a voice that no stage of the workbench uses.

Layout (so that the scorer in `workbench.pipeline.probes` reads the public sets the same way):

    OUT/items.json                         what was built: config, voices, chapters, counts
    OUT/lexical/dev/gold.csv + <filename>.wav       ZeroSpeech 2021 lexical dev layout
    OUT/syntactic/dev/gold.csv + <filename>.wav     ZeroSpeech 2021 syntactic dev layout
    OUT/story/<id>_correct.flac, <id>_incorrect.flac            spoken-StoryCloze layout (+ items.jsonl, set.json)
    OUT/long_story/ctx-0010s/<id>_correct.flac, ...             one StoryCloze folder per context length

gold.csv (one row per audio file): id (the pair), filename (no extension; a hash, so that the name does not
give the answer away), correct (1/0), voice, and per set: lexical frequency, word, phones, length (phones);
syntactic type, subtype, transcription, length (words). Every file is written atomically, items.json last.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import hashlib
import io
import json
import random
import re
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import soundfile as sf

from workbench.core.audio import SAMPLE_RATE, resample_audio, save_audio
from workbench.core.config import Config, override, pick_preset
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json, atomic_write_text
from workbench.data import corpus as corpus_plan
from workbench.data.synth import SynthesisError, espeak_pho, render, run_tool
from workbench.data.texts import Chapter, read_all, words
from workbench.data.voices import VOICES, Voice, have_espeak, have_mbrola

FORMAT = "speechssm-workbench-probes"
# A reader no stage of the workbench uses: not in VOICES, so no corpus, tokenizer or LM has heard it.
UNSEEN_VOICE = Voice("us2-p", "us2", "male", "US", pitch=60, speed=124, tract=1.07, held_out=True)
SETS = ("lexical", "syntactic", "story", "long_story")
BANDS = ("frequent", "rare")
SYNTACTIC_TYPES = ("agreement", "word_order", "determiner_noun")
# sentence length classes by word count: [4, 8), [8, 12), ...; a story's two endings share one
LENGTH_EDGES = (4, 8, 12, 16, 24, 32, 48)
WORDS_PER_SECOND = 2.67  # planning estimate (as the corpus): how much text to render for a prefix

# espeak-ng (en-us) phoneme mnemonics that a substitution may put in or take out; other phones (allophones such as
# the flap t#, syllabic @L, or modifiers) stay where they are
CONSONANTS = ("p", "b", "t", "d", "k", "g", "tS", "dZ", "f", "v", "T", "D", "s", "z", "S", "Z", "h", "m", "n", "N",
              "l", "r", "w", "j")
VOWELS = ("a", "aI", "aU", "E", "eI", "I", "i", "i:", "0", "O:", "oU", "OI", "u:", "U", "V", "3:", "@")
STRESS = "',"
BOUNDARY = "#"
_WORD_SPAN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")  # the words of `texts.words`, with their places


@dataclass(frozen=True)
class ProbeConfig(Config):
    corpus_preset: str  # whose plan decides the held-out chapters and the training-word frequencies
    lexical_pairs: int = 200  # per frequency band
    syntactic_pairs: int = 100  # per type
    story_pairs: int = 100
    story_sentences: int = 4  # the story prefix (StoryCloze: 4 sentences, then the ending)
    long_pairs: int = 20
    context_seconds: tuple[float, ...] = (10.0, 60.0, 240.0, 480.0)
    min_phones: int = 3  # lexical words of min..max phones
    max_phones: int = 10
    frequent_top: int = 500  # "frequent": among the this many most frequent eligible training words
    rare_max_count: int = 2  # "rare": heard at most this many times in training (and at least once)
    lexicon_size: int | None = None  # most frequent Austen words phonemised for the phonotactics (None: all)
    min_sentence_words: int = 4  # syntactic sentences and story endings: this many words ...
    max_sentence_words: int = 20  # ... up to this many (syntactic) ...
    max_ending_words: int = 40  # ... or this many (story endings)
    seed: int = 0

    def __post_init__(self):
        problems = []
        for name in ("lexical_pairs", "syntactic_pairs", "story_pairs", "long_pairs"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                problems.append(f"{name} must be a whole number >= 0")
        if self.story_sentences < 1:
            problems.append("story_sentences must be >= 1")
        if not self.context_seconds or any(not s > 0 for s in self.context_seconds):
            problems.append("context_seconds must be positive seconds")
        if not 2 <= self.min_phones <= self.max_phones:
            problems.append("need 2 <= min_phones <= max_phones")
        if not 2 <= self.min_sentence_words <= self.max_sentence_words:
            problems.append("need 2 <= min_sentence_words <= max_sentence_words")
        if self.corpus_preset not in corpus_plan.PRESETS:
            problems.append(f"unknown corpus preset {self.corpus_preset!r}")
        if problems:
            raise ValueError("bad probe settings: " + "; ".join(problems))


PRESETS = {
    "smoke": ProbeConfig("smoke", lexical_pairs=6, syntactic_pairs=3, story_pairs=6, long_pairs=3,
                         context_seconds=(2.0, 6.0), frequent_top=100, lexicon_size=3000),
    # sized for notebook 03 inside the 90-minute reproduction: +-0.07 (lexical, story) to +-0.14 (each syntactic
    # type) around 0.5 at 95%; `paper` is the larger set
    "laptop": ProbeConfig("laptop", lexical_pairs=100, syntactic_pairs=50, story_pairs=100, long_pairs=12),
    "paper": ProbeConfig("paper", lexical_pairs=1000, syntactic_pairs=500, story_pairs=500, long_pairs=64),
}


def probe_config(preset: str, **changes: Any) -> ProbeConfig:
    return override(pick_preset(PRESETS, preset, "probe"), **{k: v for k, v in changes.items() if v is not None})


def probe_voices() -> tuple[Voice, ...]:
    """The readers of every probe: the corpus's held-out voices, then one that nothing was trained on."""
    return tuple(v for v in VOICES if v.held_out) + (UNSEEN_VOICE,)


def length_class(num_words: int) -> int:
    """The length class of a sentence of `num_words` words (index into LENGTH_EDGES)."""
    return bisect.bisect_right(LENGTH_EDGES, num_words)


# ------------------------------------------------------------------------------------------- phones


def base(phone: str) -> str:
    """A phone without its stress mark."""
    return phone.lstrip(STRESS)


def is_vowel(phone: str) -> bool:
    b = base(phone)
    return bool(b) and b[0] in "aeiouAEIOUV@03"


def phonemize(texts: Sequence[str], voice: Voice) -> list[list[str]]:
    """espeak-ng's phones (its -x mnemonics, stress marks on the vowel they stress) of each text: a word, or
    phoneme input ``[[...]]`` (what espeak-ng understood of it). One call per batch; a batch whose line count
    disagrees with its text count is split until the culprit is alone (as `synth.lexicon` does)."""
    out: list[list[str]] = [[] for _ in texts]

    def solve(idx: list[int]) -> None:
        lines = run_tool(["espeak-ng", "-q", "-x", "--sep=_", "-v", voice.espeak_voice],
                     "\n".join(f"{texts[i]}." for i in idx)).splitlines()
        lines = [line for line in lines if line.strip()]
        if len(lines) == len(idx):
            for i, line in zip(idx, lines):
                out[i] = [p for tok in line.split() for p in tok.split("_") if p]
        elif len(idx) == 1:
            out[idx[0]] = [p for line in lines for tok in line.split() for p in tok.split("_") if p]
        else:
            solve(idx[: len(idx) // 2])
            solve(idx[len(idx) // 2:])

    order = list(range(len(texts)))
    for start in range(0, len(order), 2000):
        solve(order[start:start + 2000])
    return out


def phoneme_input(phones: Sequence[str]) -> str:
    return "[[" + "".join(phones) + "]]"


class Phonotactics:
    """Phone bigrams of a lexicon (word boundaries included): which sequences are attested, and how likely."""

    def __init__(self, lexicon: dict[str, list[str]]):
        self.words = {tuple(base(p) for p in phones) for phones in lexicon.values()}
        self.bigrams: Counter = Counter()
        self.unigrams: Counter = Counter()
        for phones in lexicon.values():
            seq = [BOUNDARY] + [base(p) for p in phones] + [BOUNDARY]
            self.bigrams.update(zip(seq[:-1], seq[1:]))
            self.unigrams.update(seq[:-1])
        self.size = len({b for pair in self.bigrams for b in pair})

    def attested(self, a: str, b: str, min_count: int = 2) -> bool:
        return self.bigrams[(a, b)] >= min_count

    def logp(self, a: str, b: str) -> float:
        """log P(b | a), add-one smoothed."""
        return float(np.log((self.bigrams[(a, b)] + 1) / (self.unigrams[a] + self.size)))

    def score(self, phones: Sequence[str]) -> float:
        seq = [BOUNDARY] + [base(p) for p in phones] + [BOUNDARY]
        return sum(self.logp(a, b) for a, b in zip(seq[:-1], seq[1:]))

    def is_word(self, phones: Sequence[str]) -> bool:
        return tuple(base(p) for p in phones) in self.words


def nonword_candidates(phones: Sequence[str], tactics: Phonotactics, rng: random.Random, keep: int = 5
                       ) -> list[tuple[list[str], tuple[int, ...]]]:
    """Non-words made from a word's phones, best first: k = max(1, round(n / 4)) phones (non-adjacent) replaced by
    phones of the same class (vowel / consonant), stress marks kept in place, every new bigram attested in the
    lexicon, not itself a word of the lexicon; ranked by how close their bigram log-probability is to the word's
    (matched phonotactics). Returns (phones, changed positions)."""
    n = len(phones)
    k = max(1, round(n / 4))
    seq = [BOUNDARY] + [base(p) for p in phones] + [BOUNDARY]
    options: dict[int, list[tuple[float, str]]] = {}
    for i, p in enumerate(phones):
        b = base(p)
        pool = VOWELS if b in VOWELS else CONSONANTS if b in CONSONANTS else ()
        prev, nxt = seq[i], seq[i + 2]
        here = []
        for r in pool:
            if r != b and tactics.attested(prev, r) and tactics.attested(r, nxt):
                delta = tactics.logp(prev, r) + tactics.logp(r, nxt) - tactics.logp(prev, b) - tactics.logp(b, nxt)
                here.append((delta, r))
        if here:
            options[i] = sorted(here, key=lambda x: (abs(x[0]), x[1]))[:6]
    positions = sorted(options)
    combos: list[tuple[int, ...]] = [(i,) for i in positions]
    if k >= 2:
        combos = [(i, j) for a, i in enumerate(positions) for j in positions[a + 1:] if j - i > 1]
    found = []
    for combo in combos:
        choices: list[list[tuple[float, str]]] = [options[i] for i in combo]
        for picks in _product(choices):
            delta = sum(d for d, _ in picks)
            new = list(phones)
            for i, (_, r) in zip(combo, picks):
                stress = phones[i][: len(phones[i]) - len(base(phones[i]))]
                new[i] = stress + r
            if not tactics.is_word(new):
                found.append((abs(delta), rng.random(), new, combo))
    found.sort(key=lambda x: (x[0], x[1]))
    return [(new, combo) for _, _, new, combo in found[:keep]]


def _product(lists: list[list[Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for options in lists:
        out = [o + (x,) for o in out for x in options]
    return out


# ------------------------------------------------------------------------------------------- speech


def speak_phonemes(phones: Sequence[str], voice: Voice, *, mbrola: bool | None = None) -> np.ndarray:
    """Audio (16 kHz mono float32) of espeak-ng phoneme input ``[[...]]`` in `voice`: espeak-ng chooses the
    durations and pitch, mbrola renders them (espeak-ng's own voice where mbrola is missing, with a warning)."""
    text = phoneme_input(phones)
    if not have_espeak():
        raise SynthesisError("espeak-ng is not installed (run `make setup`)")
    if mbrola is None:
        mbrola = have_mbrola(voice)
        if not mbrola:
            warnings.warn(f"mbrola voice {voice.base} not installed: falling back to espeak-ng's {voice.native_voice}",
                          stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="wb-probe-") as tmp:
        wav = Path(tmp) / "out.wav"
        if mbrola:
            lines = espeak_pho(text, voice)
            pho = Path(tmp) / "in.pho"
            pho.write_text("\n".join(" ".join(line) for line in lines) + "\n")
            run_tool(["mbrola", "-e", str(voice.mbrola_path), str(pho), str(wav)], "")
        else:
            run_tool(["espeak-ng", "-v", voice.native_voice, "-s", str(round(voice.speed * 1.2)), "-p", str(voice.pitch),
                  "-w", str(wav), text], "")
        audio, sr = sf.read(str(wav), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        audio = resample_audio(audio, sr, SAMPLE_RATE)
    if voice.tract != 1.0:  # as synth.render: pitch and formants scale together
        audio = resample_audio(audio, int(round(SAMPLE_RATE * voice.tract)), SAMPLE_RATE)
    return np.asarray(audio, dtype=np.float32)


# ------------------------------------------------------------------------------------------- texts


@dataclass(frozen=True)
class Sources:
    """What the probes are made of: held-out chapters (in the order they are used) and training-word counts."""

    chapters: list[Chapter]
    held_out_split: dict[str, str]  # chapter id -> "dev" / "test" (the corpus's) or "unread" (no split reads it)
    train_counts: Counter
    train_chapters: frozenset[str]


def sources(config: ProbeConfig) -> Sources:
    """Held-out chapters of the corpus preset's plan: its dev/test chapters first (whole, never truncated), then
    the chapters the preset does not read at all (seeded order). Word frequencies: the training text."""
    jobs = corpus_plan.plan(corpus_plan.PRESETS[config.corpus_preset])
    train_ids = frozenset(j.chapter.id for j in jobs if j.split == "train")
    full = {c.id: c for c in read_all()}
    split = {}
    for job in jobs:
        if job.split in ("dev", "test") and job.chapter.id not in split:
            split[job.chapter.id] = job.split
    rest = [cid for cid in full if cid not in train_ids and cid not in split]
    random.Random(config.seed).shuffle(rest)
    split.update({cid: "unread" for cid in rest})
    counts = Counter(w.lower() for j in jobs if j.split == "train" for s in j.chapter.sentences for w in words(s))
    return Sources([full[cid] for cid in split], split, counts, train_ids)


# ------------------------------------------------------------------------------------------- lexical


def lexical_pairs(config: ProbeConfig, src: Sources, voices: Sequence[Voice], log: Callable[[str], None]
                  ) -> list[dict[str, Any]]:
    """Word / non-word pairs, `lexical_pairs` per frequency band, voices taken in turn."""
    rng = random.Random(config.seed + 1)
    vocab = Counter(w.lower() for c in read_all() for s in c.sentences for w in words(s))
    lexicon_words = [w for w, _ in vocab.most_common(config.lexicon_size) if w.isalpha()]
    for w in src.train_counts:  # every word the LM heard is known to be a word
        if w.isalpha() and w not in vocab:
            lexicon_words.append(w)
    # training words that may be probed, by band: frequent ones (heard more than rare_max_count times, the
    # frequent_top most frequent of them) and rare ones (heard 1..rare_max_count times); the bands never overlap
    eligible = sorted((w for w in src.train_counts if w.isalpha() and len(w) > 1), key=lambda w: (-src.train_counts[w], w))
    lexicons: dict[str, dict[str, list[str]]] = {}
    tactics: dict[str, Phonotactics] = {}
    pairs: list[dict[str, Any]] = []
    for band in BANDS:
        if band == "frequent":
            band_words = [w for w in eligible if src.train_counts[w] > config.rare_max_count][: config.frequent_top]
        else:
            band_words = [w for w in eligible if src.train_counts[w] <= config.rare_max_count]
        rng.shuffle(band_words)
        taken = 0
        for word in band_words:
            if taken >= config.lexical_pairs:
                break
            voice = voices[len(pairs) % len(voices)]
            if voice.espeak_voice not in lexicons:
                table = phonemize(lexicon_words, voice)
                lexicons[voice.espeak_voice] = {w: p for w, p in zip(lexicon_words, table) if p}
                tactics[voice.espeak_voice] = Phonotactics(lexicons[voice.espeak_voice])
            lex, tac = lexicons[voice.espeak_voice], tactics[voice.espeak_voice]
            phones = lex.get(word) or phonemize([word], voice)[0]
            if not config.min_phones <= len(phones) <= config.max_phones or any(base(p) == "" for p in phones):
                continue
            candidates = nonword_candidates(phones, tac, rng)
            if not candidates:
                continue
            # what espeak-ng makes of the phoneme input must be exactly the intended phones, for both members
            heard = phonemize([phoneme_input(phones)] + [phoneme_input(c) for c, _ in candidates], voice)
            if [base(p) for p in heard[0]] != [base(p) for p in phones]:
                continue
            chosen = next(((c, pos) for (c, pos), h in zip(candidates, heard[1:])
                           if [base(p) for p in h] == [base(p) for p in c]), None)
            if chosen is None:
                continue
            nonword, changed = chosen
            pairs.append({"id": f"lex-{len(pairs):05d}", "voice": voice.name, "frequency": band, "word": word,
                          "train_count": src.train_counts[word], "phones": list(phones), "nonword": list(nonword),
                          "changed": list(changed), "length": len(phones)})
            taken += 1
        if taken < config.lexical_pairs:
            log(f"lexical: only {taken} of {config.lexical_pairs} {band} pairs could be made")
    return pairs


# ------------------------------------------------------------------------------------------- syntactic

# (subject pronoun, verb) -> the verb that breaks agreement; "he was" -> "he were" is left out (a subjunctive)
AGREEMENT = {
    **{(p, "is"): "are" for p in ("he", "she", "it")}, **{(p, "are"): "is" for p in ("they", "we", "you")},
    **{(p, "has"): "have" for p in ("he", "she", "it")}, **{(p, "have"): "has" for p in ("they", "we", "i")},
    **{(p, "does"): "do" for p in ("he", "she", "it")}, **{(p, "do"): "does" for p in ("they", "we")},
    **{(p, "were"): "was" for p in ("they", "we", "you")}, ("i", "am"): "is",
}
ORDER_DETERMINERS = ("the", "a", "an")
# determiner -> (its number-swapped form, does the next word have to end in s)
DETERMINERS = {"this": ("these", False), "these": ("this", True), "those": ("that", True), "many": ("much", True)}
FUNCTION_WORDS = frozenset(
    "a an the this that these those is was are were be been being am has have had do does did will would shall "
    "should can could may might must and or but nor of to in on at by for with from as than so not no i you he "
    "she it we they me him her us them my your his its our their who whom which what when where why how if "
    "very too all any some each every".split())


def _match_case(new: str, old: str) -> str:
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


def syntactic_edits(sentence: str) -> dict[str, list[dict[str, Any]]]:
    """Every minimal ungrammatical edit of `sentence` by type: the changed text, which word positions changed,
    and what the rule was. Only words separated by a plain space are touched (never across punctuation)."""
    spans = list(_WORD_SPAN.finditer(sentence))
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in SYNTACTIC_TYPES}

    def adjacent(i: int) -> bool:
        return i + 1 < len(spans) and sentence[spans[i].end():spans[i + 1].start()] == " "

    def replace(i: int, new: str) -> str:
        return sentence[:spans[i].start()] + new + sentence[spans[i].end():]

    for i, m in enumerate(spans):
        w = m.group().lower()
        if not adjacent(i):
            continue
        nxt = spans[i + 1].group()
        n = nxt.lower()
        if (w, n) in AGREEMENT:
            new = _match_case(AGREEMENT[(w, n)], nxt)
            out["agreement"].append({"text": replace(i + 1, new), "changed": [i + 1], "rule": f"{w} {n} -> {w} {new.lower()}"})
        if w in ORDER_DETERMINERS and i >= 1 and n.isalpha() and n not in FUNCTION_WORDS and n != w:
            swapped = (sentence[:m.start()] + nxt + " " + m.group() + sentence[spans[i + 1].end():])
            out["word_order"].append({"text": swapped, "changed": [i, i + 1], "rule": f"{w} N -> N {w}"})
        if w in DETERMINERS and n.isalpha() and nxt.islower() and n not in FUNCTION_WORDS:
            new, plural = DETERMINERS[w]
            if n.endswith("s") == plural and not n.endswith("ss"):
                out["determiner_noun"].append({"text": replace(i, _match_case(new, m.group())), "changed": [i],
                                               "rule": f"{w} N -> {new} N"})
    return out


def syntactic_pairs(config: ProbeConfig, src: Sources, voices: Sequence[Voice], log: Callable[[str], None]
                    ) -> list[dict[str, Any]]:
    """Grammatical / ungrammatical sentence pairs, `syntactic_pairs` per type, one pair per held-out sentence."""
    rng = random.Random(config.seed + 2)
    need = {t: config.syntactic_pairs for t in SYNTACTIC_TYPES}
    pairs: list[dict[str, Any]] = []
    for chapter in src.chapters:
        if not any(need.values()):
            break
        for k, sentence in enumerate(chapter.sentences):
            n = len(words(sentence))
            if not config.min_sentence_words <= n <= config.max_sentence_words:
                continue
            edits = syntactic_edits(sentence)
            open_types = [t for t in SYNTACTIC_TYPES if need[t] and edits[t]]
            if not open_types:
                continue
            kind = max(open_types, key=lambda t: (need[t], -SYNTACTIC_TYPES.index(t)))
            edit = rng.choice(edits[kind])
            voice = voices[(config.syntactic_pairs - need[kind]) % len(voices)]
            pairs.append({"id": f"syn-{len(pairs):05d}", "voice": voice.name, "type": kind, "subtype": edit["rule"],
                          "chapter": chapter.id, "sentence_index": k, "correct": sentence, "incorrect": edit["text"],
                          "changed": edit["changed"], "length": n})
            need[kind] -= 1
            if not any(need.values()):
                break
    for t, left in need.items():
        if left:
            log(f"syntactic: only {config.syntactic_pairs - left} of {config.syntactic_pairs} {t} pairs found")
    return pairs


# ------------------------------------------------------------------------------------------- stories


def _ending_ok(sentence: str, config: ProbeConfig) -> bool:
    return config.min_sentence_words <= len(words(sentence)) <= config.max_ending_words


class Distractors:
    """Sentences of the held-out chapters by length class: the wrong ending of a story comes from another
    chapter, in the true ending's length class, with the closest word count (each used once while there are
    others)."""

    def __init__(self, chapters: Sequence[Chapter], config: ProbeConfig, rng: random.Random):
        self.rng, self.used = rng, set()
        self.by_class: dict[int, list[tuple[str, int, str]]] = {}
        for c in chapters:
            for s in c.sentences:
                if _ending_ok(s, config):
                    n = len(words(s))
                    self.by_class.setdefault(length_class(n), []).append((c.id, n, s))

    def pick(self, chapter_id: str, sentence: str) -> tuple[str, str] | None:
        n = len(words(sentence))
        pool = [x for x in self.by_class.get(length_class(n), []) if x[0] != chapter_id and x[2] != sentence]
        fresh = [x for x in pool if x[2] not in self.used] or pool
        if not fresh:
            return None
        best = min(abs(x[1] - n) for x in fresh)
        chapter, _, text = self.rng.choice([x for x in fresh if abs(x[1] - n) == best])
        self.used.add(text)
        return chapter, text


def story_plan(config: ProbeConfig, src: Sources) -> list[dict[str, Any]]:
    """Short stories: `story_sentences` sentences, then the true next one or another chapter's; cut points spaced
    so that no two items of a chapter share a sentence, chapters taken in turn."""
    rng = random.Random(config.seed + 3)
    distractors = Distractors(src.chapters, config, rng)
    s = config.story_sentences
    cuts = {c.id: [k for k in range(s, len(c.sentences), s + 1) if _ending_ok(c.sentences[k], config)]
            for c in src.chapters}
    def item(c, k: int, n: int) -> dict[str, Any] | None:
        wrong = distractors.pick(c.id, c.sentences[k])
        return wrong and {"id": f"story-{n:05d}", "chapter": c.id, "sentence_index": k,
                          "prefix": list(c.sentences[k - s:k]), "correct": c.sentences[k], "incorrect": wrong[1],
                          "incorrect_chapter": wrong[0]}

    return _in_turn(src.chapters, cuts, config.story_pairs, item)


def long_story_plan(config: ProbeConfig, src: Sources) -> list[dict[str, Any]]:
    """Cut points with at least the longest context of text before them (estimated at WORDS_PER_SECOND, with a
    margin), at least 10 sentences apart, chapters taken in turn."""
    rng = random.Random(config.seed + 4)
    distractors = Distractors(src.chapters, config, rng)
    need_words = 1.15 * max(config.context_seconds) * WORDS_PER_SECOND + 10
    cuts: dict[str, list[int]] = {}
    for c in src.chapters:
        counts = np.cumsum([0] + [len(words(s)) for s in c.sentences])
        ok, last = [], -10
        for k in range(1, len(c.sentences)):
            if counts[k] >= need_words and k - last >= 10 and _ending_ok(c.sentences[k], config):
                ok.append(k)
                last = k
        cuts[c.id] = ok
    def item(c, k: int, n: int) -> dict[str, Any] | None:
        wrong = distractors.pick(c.id, c.sentences[k])
        return wrong and {"id": f"long-{n:05d}", "chapter": c.id, "sentence_index": k, "correct": c.sentences[k],
                          "incorrect": wrong[1], "incorrect_chapter": wrong[0]}

    return _in_turn(src.chapters, cuts, config.long_pairs, item)


def _in_turn(chapters, cuts: dict[str, list[int]], limit: int, make) -> list[dict[str, Any]]:
    """Items at the cut points, chapters taken in turn (each chapter's first cut, then each one's second, ...),
    until `limit`; `make(chapter, k, n)` is the n-th item at sentence k, or None where none can be made there."""
    items: list[dict[str, Any]] = []
    for rank in range(max((len(v) for v in cuts.values()), default=0)):
        for c in chapters:
            if len(items) >= limit:
                return items
            if rank < len(cuts[c.id]) and (made := make(c, cuts[c.id][rank], len(items))):
                items.append(made)
    return items


def _cut_before(rendering, seconds: float) -> tuple[float, int] | None:
    """Where to cut a rendering so that at least `seconds` of it remain, at a sentence start (the middle of the
    pause before it): (cut time, first sentence kept), or None if it is too short."""
    total = rendering.duration
    spans = rendering.sentences
    for j in range(len(spans) - 1, -1, -1):
        if total - spans[j][1] >= seconds:
            cut = 0.0 if j == 0 else (spans[j - 1][2] + spans[j][1]) / 2
            return cut, j
    return None


# ------------------------------------------------------------------------------------------- writing


def _hashed(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _seconds(audio: np.ndarray) -> float:
    return round(len(audio) / SAMPLE_RATE, 3)


def build_probes(config: ProbeConfig, out: str | Path, *, sets: Sequence[str] = SETS, progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the probe sets of `config` into `out` (see the module docstring) and return the summary written to
    items.json. A folder that already holds the same build is kept as it is."""
    from tqdm.auto import tqdm

    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise UserError(f"unknown probe set(s) {unknown}; sets: {', '.join(SETS)}")
    out = Path(out)
    identity = {"format": FORMAT, "config": config.to_dict(), "sets": list(sets)}
    manifest = out / "items.json"
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text())
        except ValueError:
            previous = {}
        if all(previous.get(k) == v for k, v in identity.items()):
            return previous
        raise UserError(f"{out} holds probe sets built with other settings ({manifest}); choose another --out "
                        "or delete it")
    if not have_espeak():
        raise UserError("espeak-ng is not installed: the probe sets are synthesized (run `make setup`)")
    started = time.time()
    voices = probe_voices()
    by_name = {v.name: v for v in voices}
    src = sources(config)
    counts: dict[str, Any] = {}

    if "lexical" in sets:
        pairs = lexical_pairs(config, src, voices, log)
        folder, rows = out / "lexical" / "dev", []
        for p in tqdm(pairs, desc="lexical probes", unit="pair", disable=not progress):
            v = by_name[p["voice"]]
            for correct, phones in ((1, p["phones"]), (0, p["nonword"])):
                name = _hashed(config.seed, p["id"], p["voice"], correct)
                audio = speak_phonemes(phones, v)
                save_audio(folder / f"{name}.wav", audio)
                p["seconds_word" if correct else "seconds_nonword"] = _seconds(audio)
                rows.append({"id": p["id"], "filename": name, "correct": correct, "frequency": p["frequency"],
                             "word": p["word"] if correct else "".join(phones), "phones": " ".join(phones),
                             "length": len(phones), "voice": p["voice"]})
        if rows:
            _write_csv(folder / "gold.csv", rows)
            _write_jsonl(folder / "items.jsonl", pairs)
        counts["lexical"] = {b: sum(p["frequency"] == b for p in pairs) for b in BANDS}

    if "syntactic" in sets:
        pairs = syntactic_pairs(config, src, voices, log)
        folder, rows = out / "syntactic" / "dev", []
        for p in tqdm(pairs, desc="syntactic probes", unit="pair", disable=not progress):
            v = by_name[p["voice"]]
            for correct, text in ((1, p["correct"]), (0, p["incorrect"])):
                name = _hashed(config.seed, p["id"], p["voice"], correct)
                audio = render([text], v).audio
                save_audio(folder / f"{name}.wav", audio)
                p["seconds_correct" if correct else "seconds_incorrect"] = _seconds(audio)
                rows.append({"id": p["id"], "filename": name, "type": p["type"], "subtype": p["subtype"],
                             "correct": correct, "transcription": text, "length": p["length"], "voice": p["voice"]})
        if rows:
            _write_csv(folder / "gold.csv", rows)
            _write_jsonl(folder / "items.jsonl", pairs)
        counts["syntactic"] = {t: sum(p["type"] == t for p in pairs) for t in SYNTACTIC_TYPES}

    if "story" in sets:
        items = story_plan(config, src)
        folder = out / "story"
        for n, item in enumerate(tqdm(items, desc="story probes", unit="pair", disable=not progress)):
            v = voices[n % len(voices)]
            prefix = render(item["prefix"], v).audio
            _write_story(folder, item, v, prefix, render([item["correct"]], v).audio,
                         render([item["incorrect"]], v).audio)
        if items:
            _write_jsonl(folder / "items.jsonl", items)
            atomic_write_json(folder / "set.json", {"kind": "story", "layout": "storycloze", "context_seconds": None,
                                                    "prefix_sentences": config.story_sentences})
        counts["story"] = len(items)

    if "long_story" in sets:
        items = long_story_plan(config, src)
        per_context: dict[float, list[dict[str, Any]]] = {s: [] for s in config.context_seconds}
        chapters = {c.id: c for c in src.chapters}
        longest = max(config.context_seconds)
        for n, item in enumerate(tqdm(items, desc="long-context probes", unit="item", disable=not progress)):
            v = voices[n % len(voices)]
            sentences, k = chapters[item["chapter"]].sentences, item["sentence_index"]
            rendering, first = None, k
            for margin in (1.25, 1.6, 2.5):  # render enough of the chapter before the cut for the longest context
                need = margin * longest * WORDS_PER_SECOND + 10
                first, got = k, 0
                while first > 0 and got < need:
                    first -= 1
                    got += len(words(sentences[first]))
                rendering = render(list(sentences[first:k]), v)
                if rendering.duration >= longest + 0.5 or first == 0:
                    break
            if _cut_before(rendering, longest) is None:
                log(f"long_story: {item['id']} has less than {longest:g} s before its cut; skipped")
                continue
            right, wrong = render([item["correct"]], v).audio, render([item["incorrect"]], v).audio
            for seconds in config.context_seconds:
                cut, j = _cut_before(rendering, seconds)
                prefix = rendering.audio[int(round(cut * SAMPLE_RATE)):]
                entry = dict(item, context_seconds=seconds, prefix_first_sentence=first + j,
                             prefix_sentences=k - first - j)
                _write_story(out / "long_story" / _context_folder(seconds), entry, v, prefix, right, wrong)
                per_context[seconds].append(entry)
        for seconds, entries in per_context.items():
            if entries:
                folder = out / "long_story" / _context_folder(seconds)
                _write_jsonl(folder / "items.jsonl", entries)
                atomic_write_json(folder / "set.json", {"kind": "long_story", "layout": "storycloze",
                                                        "context_seconds": seconds})
        counts["long_story"] = {_context_folder(s): len(e) for s, e in per_context.items()}

    summary = {
        **identity, "preset": config.corpus_preset, "path": str(out), "counts": counts,
        "voices": {v.name: ("unseen" if v is UNSEEN_VOICE else "held_out") for v in voices},
        "voice_settings": [dataclasses.asdict(v) for v in voices],
        "chapters": {cid: src.held_out_split[cid] for cid in src.held_out_split},
        "mbrola": have_mbrola(), "build_seconds": round(time.time() - started, 2),
    }
    atomic_write_json(manifest, summary)
    return summary


def _context_folder(seconds: float) -> str:
    return f"ctx-{int(round(seconds)):04d}s"


def _write_story(folder: Path, item: dict[str, Any], voice: Voice, prefix: np.ndarray, right: np.ndarray,
                 wrong: np.ndarray) -> None:
    """One StoryCloze item: the same prefix audio, then the true or the other chapter's ending."""
    save_audio(folder / f"{item['id']}_correct.flac", np.concatenate([prefix, right]))
    save_audio(folder / f"{item['id']}_incorrect.flac", np.concatenate([prefix, wrong]))
    item.update(voice=voice.name, prefix_seconds=_seconds(prefix), seconds_correct=_seconds(right),
                seconds_incorrect=_seconds(wrong), words_correct=len(words(item["correct"])),
                words_incorrect=len(words(item["incorrect"])),
                length_class=length_class(len(words(item["correct"]))))


__all__ = ["PRESETS", "SETS", "UNSEEN_VOICE", "ProbeConfig", "Phonotactics", "build_probes", "length_class",
           "nonword_candidates", "phonemize", "probe_config", "probe_voices", "speak_phonemes", "sources",
           "syntactic_edits"]
