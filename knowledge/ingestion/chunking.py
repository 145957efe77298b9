"""Split parsed sections into chunks that follow the document's structure.

Pure: no ORM, no I/O. Sizes are counted in words (whitespace-separated), a close
enough proxy for the embedder's 256-wordpiece window at the default of 180.

- prose: paragraphs are packed whole while they fit; a paragraph too big for one
  chunk is split into sentences, a sentence too big into word windows. A new chunk
  repeats the last ``overlap`` words' worth of sentences of the previous one.
- tables: rows are packed whole (a row is never split, and never repeated).
- every chunk starts with its section's context line (heading path, sheet) and
  carries its provenance (page, heading path, sheet and row range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.ingestion.parsers import Section

DEFAULT_TARGET_WORDS = 180
DEFAULT_OVERLAP_WORDS = 30

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# End of sentence: . ! ? (and their runs, closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"')\]])\s+")


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    provenance: dict


def _words(text: str) -> int:
    return len(text.split())


def split_sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _units(text: str, target: int) -> list[tuple[str, bool]]:
    """(unit, starts_paragraph): whole paragraphs when they fit, else sentences,
    else word windows of at most ``target`` words."""
    units = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if _words(paragraph) <= target:
            units.append((paragraph, True))
            continue
        first = True
        for sentence in split_sentences(paragraph):
            words = sentence.split()
            for start in range(0, len(words), target):
                units.append((" ".join(words[start:start + target]), first))
                first = False
    return units


def _pack_prose(section: Section, target: int, overlap: int) -> list[ChunkDraft]:
    units = _units(section.text, target)
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for unit, _ in units:
        n = _words(unit)
        if current and size + n > target:
            chunks.append(current)
            # Carry the closed chunk's trailing sentences, up to `overlap` words.
            carried, carried_size = [], 0
            for previous in reversed([sentence for part in current for sentence in split_sentences(part)]):
                pw = _words(previous)
                if carried_size + pw > overlap or carried_size + pw + n > target:
                    break
                carried.insert(0, previous)
                carried_size += pw
            carried = [" ".join(carried)] if carried else []
            current, size = carried, carried_size
        current.append(unit)
        size += n
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


def _pack_rows(section: Section, target: int) -> list[ChunkDraft]:
    prefix = f"{section.context}\n" if section.context else ""
    chunks, current, provs, size = [], [], [], 0
    for text, prov in section.rows or []:
        n = _words(text)
        if current and size + n > target:
            chunks.append(ChunkDraft(text=prefix + "\n".join(current), provenance=_row_span(provs)))
            current, provs, size = [], [], 0
        current.append(text)
        provs.append(prov)
        size += n
    if current:
        chunks.append(ChunkDraft(text=prefix + "\n".join(current), provenance=_row_span(provs)))
    return chunks


def chunk_sections(sections: list[Section], *, target_words: int = DEFAULT_TARGET_WORDS,
                   overlap_words: int = DEFAULT_OVERLAP_WORDS) -> list[ChunkDraft]:
    if target_words < 1 or overlap_words < 0 or overlap_words >= target_words:
        raise ValueError("need target_words >= 1 and 0 <= overlap_words < target_words")
    drafts: list[ChunkDraft] = []
    for section in sections:
        if section.rows is not None:
            drafts.extend(_pack_rows(section, target_words))
        elif section.text.strip():
            drafts.extend(_pack_prose(section, target_words, overlap_words))
    return drafts
