"""Novels -> chapters -> sentences -> words: the text side of the embedded corpus.

The texts are Project Gutenberg plain text (see data/texts/README.md). We keep only chapter bodies (front
matter, volume headings and end notes go), and normalise what a speech synthesizer would read wrongly:
italics underscores, footnote asterisks, brackets, '--' dashes, '&'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TEXT_DIR = Path(__file__).resolve().parents[2] / "data" / "texts"

BOOKS = {  # id -> file; the order is the canonical order of chapters in the corpus
    "sense": "sense_and_sensibility.txt",
    "pride": "pride_and_prejudice.txt",
    "mansfield": "mansfield_park.txt",
    "emma": "emma.txt",
    "northanger": "northanger_abbey.txt",
    "persuasion": "persuasion.txt",
}

_CHAPTER = re.compile(r"^\s*chapter\s+([0-9ivxlc]+)\.?\s*$", re.IGNORECASE)
_END = re.compile(r"^\s*(the end|finis|a note on the text)\s*$", re.IGNORECASE)
_FOOTNOTE = re.compile(r"^\*\S")  # "*Vide a letter ...": a footnote body, not narration
_HEADING = re.compile(r"^\s*(volume\s+[0-9ivxlc]+|[A-Z][A-Z ,.'-]+)\s*$")  # all-caps lines between chapters
_SENTENCE_END = re.compile(r'(?<=[.!?])["\')]*\s+(?=["\'(]*[A-Z0-9])')
_ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Messrs.", "Col.", "Capt.", "Sir.", "viz.", "i.e.", "e.g.", "Ld.")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")


@dataclass(frozen=True)
class Chapter:
    book: str
    index: int  # 1-based position within the book (volumes are numbered through)
    sentences: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.book}-{self.index:03d}"

    @property
    def num_words(self) -> int:
        return sum(len(words(s)) for s in self.sentences)


def normalise(text: str) -> str:
    """Make running text safe to speak: one line, no markup, plain punctuation."""
    text = text.replace("_", "").replace("*", "").replace("[", "").replace("]", "")
    text = text.replace("&c", "etcetera").replace("&", " and ").replace("£", " pounds ")
    text = re.sub(r"\s*--+\s*", ", ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([,;:.!?])", r"\1", text)


def split_sentences(paragraph: str) -> list[str]:
    """Split a normalised paragraph at sentence ends, not after common abbreviations."""
    parts, pending = [], ""
    for piece in _SENTENCE_END.split(paragraph):
        pending = f"{pending} {piece}".strip() if pending else piece
        if not pending.endswith(_ABBREVIATIONS):
            parts.append(pending)
            pending = ""
    if pending:
        parts.append(pending)
    return [p for p in parts if words(p)]


def words(sentence: str) -> list[str]:
    """The words of a sentence as read aloud (letters, digits and inner apostrophes)."""
    return _WORD.findall(sentence)


def read_book(book: str, text_dir: Path = TEXT_DIR) -> list[Chapter]:
    """Parse one novel into chapters of normalised sentences."""
    if book not in BOOKS:
        raise ValueError(f"unknown book {book!r}; books: {', '.join(BOOKS)}")
    path = Path(text_dir) / BOOKS[book]
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing corpus text (expected the six Austen novels in {text_dir})")
    chapters: list[list[str]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph and chapters:
            chapters[-1].extend(split_sentences(normalise(" ".join(paragraph))))
        paragraph.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if _END.match(line) or (_FOOTNOTE.match(line) and not paragraph):
            break
        if _CHAPTER.match(line):
            flush()
            chapters.append([])
        elif not line.strip() or (_HEADING.match(line) and len(line.strip()) > 1 and not paragraph):
            flush()
        else:
            paragraph.append(line)
    flush()
    return [Chapter(book, i + 1, tuple(s)) for i, s in enumerate(chapters) if s]


def read_all(text_dir: Path = TEXT_DIR) -> list[Chapter]:
    return [chapter for book in BOOKS for chapter in read_book(book, text_dir)]
