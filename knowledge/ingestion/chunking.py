"""Split parsed sections into chunks that follow the document's structure.

Pure: no ORM, no I/O. Sizes are counted in words (whitespace-separated), a close
enough proxy for the embedder's 256-wordpiece window at the default of 180, and
capped in characters too (``CHARS_PER_WORD`` per word of the target): text without
spaces (Chinese, a minified export, a comma-joined list) is one "word" however long,
and one 5 MB chunk would be returned whole by a search and overflow PostgreSQL's
1 MB tsvector.

- prose: paragraphs are packed whole while they fit; a paragraph too big for one
  chunk is split into sentences (also after 。！？ with no space), a sentence too
  big into word windows, and a window still too long is cut at the character cap,
  at the last punctuation or space before it when there is one. A new chunk
  repeats the last ``overlap`` words' worth of sentences of the previous one.
- tables: rows are packed whole (a row is never split, and never repeated), unless
  one row alone is over ``ROW_CHARS_PER_WORD`` characters per target word: it is cut
  as prose is, each piece keeping the row's provenance.
- every chunk starts with its section's context line (heading path, sheet) and
  carries its provenance (page, heading path, sheet and row range).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from knowledge.ingestion.common import Section

DEFAULT_TARGET_WORDS = 180
DEFAULT_OVERLAP_WORDS = 30
#: a chunk's character cap per word of the target: 2,160 characters at 180 words, room for long Indonesian words
CHARS_PER_WORD = 12
#: a table row is cut only past this many characters per target word (7,200 at 180)
ROW_CHARS_PER_WORD = 40

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# End of sentence: . ! ? (and their runs, closing quotes/brackets) followed by whitespace; a CJK full stop,
# exclamation or question mark (and a closing quote or bracket after it) ends one with or without a space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"')\]])\s+"
                           r"|(?<=[。！？])(?![。！？」』”’）)\]\"'])\s*|(?<=[。！？][」』”’）)\]\"'])\s*")
# Where a hard cut at the character cap prefers to fall: after punctuation, else before a space.
_SOFT_CUT = re.compile(r"[\s,;:、，；：。！？.!?)\]」』]")


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    provenance: dict


def _words(text: str) -> int:
    return len(text.split())


def split_sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _cut(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most ``max_chars`` characters, each cut after the last punctuation mark or before
    the last space in its second half, else at the cap itself."""
    pieces = []
    while len(text) > max_chars:
        window = text[:max_chars + 1]
        soft = [m.end() for m in _SOFT_CUT.finditer(window, max_chars // 2)]
        end = soft[-1] if soft and soft[-1] <= max_chars else max_chars
        while 0 < end < len(text) and unicodedata.combining(text[end]):
            end -= 1  # never between a letter and its accent (decomposed text)
        end = end or max_chars
        pieces.append(text[:end].strip())
        text = text[end:].lstrip()
    if text.strip():
        pieces.append(text.strip())
    return [piece for piece in pieces if piece]


def _units(text: str, target: int, max_chars: int) -> list[tuple[str, bool]]:
    """(unit, starts_paragraph): whole paragraphs when they fit, else sentences,
    else word windows of at most ``target`` words and ``max_chars`` characters."""
    units = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if _words(paragraph) <= target and len(paragraph) <= max_chars:
            units.append((paragraph, True))
            continue
        first = True
        for sentence in split_sentences(paragraph):
            words = sentence.split()
            for start in range(0, len(words), target):
                for piece in _cut(" ".join(words[start:start + target]), max_chars):
                    units.append((piece, first))
                    first = False
    return units


def _pack_prose(section: Section, target: int, overlap: int, max_chars: int) -> list[ChunkDraft]:
    units = _units(section.text, target, max_chars)
    overlap_chars = overlap * CHARS_PER_WORD
    chunks: list[list[str]] = []
    current: list[str] = []
    size = chars = 0
    for unit, _ in units:
        n = _words(unit)
        if current and (size + n > target or chars + 1 + len(unit) > max_chars):
            chunks.append(current)
            # Carry the closed chunk's trailing sentences, up to `overlap` words (and their share of characters).
            carried, carried_size, carried_chars = [], 0, 0
            for previous in reversed([sentence for part in current for sentence in split_sentences(part)]):
                pw, pc = _words(previous), len(previous) + 1
                if (carried_size + pw > overlap or carried_size + pw + n > target
                        or carried_chars + pc > overlap_chars or carried_chars + pc + len(unit) > max_chars):
                    break
                carried.insert(0, previous)
                carried_size += pw
                carried_chars += pc
            carried = [" ".join(carried)] if carried else []
            current, size, chars = carried, carried_size, carried_chars
        current.append(unit)
        size += n
        chars += len(unit) + 1
    if current:
        chunks.append(current)
    prefix = f"{section.context}\n" if section.context else ""
    return [ChunkDraft(text=prefix + "\n".join(parts), provenance=dict(section.provenance)) for parts in chunks]


def _row_span(provs: list[dict]) -> dict:
    rows = [p["row"] for p in provs if "row" in p]
    base = {k: v for k, v in provs[0].items() if k != "row"}
    if rows:
        base["rows"] = [min(rows), max(rows)]
    return base


def _row_pieces(rows, target: int, max_chars: int):
    """Rows as they are, but one over ``ROW_CHARS_PER_WORD`` characters per target word cut into prose-sized
    pieces, each with the row's provenance."""
    for text, prov in rows:
        if len(text) <= target * ROW_CHARS_PER_WORD:
            yield text, prov
        else:
            for piece, _ in _units(text, target, max_chars):
                yield piece, prov


def _pack_rows(section: Section, target: int, max_chars: int) -> list[ChunkDraft]:
    prefix = f"{section.context}\n" if section.context else ""
    chunks, current, provs, size, chars = [], [], [], 0, 0
    for text, prov in _row_pieces(section.rows or [], target, max_chars):
        n = _words(text)
        if current and (size + n > target or chars + 1 + len(text) > max_chars):
            chunks.append(ChunkDraft(text=prefix + "\n".join(current), provenance=_row_span(provs)))
            current, provs, size, chars = [], [], 0, 0
        current.append(text)
        provs.append(prov)
        size += n
        chars += len(text) + 1
    if current:
        chunks.append(ChunkDraft(text=prefix + "\n".join(current), provenance=_row_span(provs)))
    return chunks


def chunk_sections(sections: list[Section], *, target_words: int = DEFAULT_TARGET_WORDS,
                   overlap_words: int = DEFAULT_OVERLAP_WORDS) -> list[ChunkDraft]:
    """Chunks of at most ``target_words`` words and ``target_words * CHARS_PER_WORD`` characters (plus the context
    line), except a table row, which stays whole up to ``target_words * ROW_CHARS_PER_WORD`` characters."""
    if target_words < 1 or overlap_words < 0 or overlap_words >= target_words:
        raise ValueError("need target_words >= 1 and 0 <= overlap_words < target_words")
    max_chars = target_words * CHARS_PER_WORD
    drafts: list[ChunkDraft] = []
    for section in sections:
        if section.rows is not None:
            drafts.extend(_pack_rows(section, target_words, max_chars))
        elif section.text.strip():
            drafts.extend(_pack_prose(section, target_words, overlap_words, max_chars))
    return drafts
