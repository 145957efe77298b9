"""Split a reply into chat-sized bubbles. Pure: no ORM, no I/O.

The reply is cut into blocks at blank lines (a fenced code block is one block even
with blank lines inside), each block is packed into bubbles under the channel's
limit: first by line (a list item with its continuation lines is one unit, a code
fence is one unit), then by sentence, then by word. Text is only ever cut at
whitespace, so a URL, an e-mail address, ``1.500.000`` or ``09.00`` can never be
split; ``Rp 1.500.000`` is kept as one unit, and a sentence never ends after an
abbreviation such as ``dll.`` or ``Jl.``.

Blocks are split independently of one another, which is what lets
:class:`BubbleStream` send a block's bubbles as soon as the model finishes it and
still produce exactly what :func:`split_bubbles` gives for the whole reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BubbleLimits:
    max_chars: int
    max_bubbles: int | None


# Style limits, well under the platforms' hard limits (WhatsApp 4096, Telegram 4096):
# chat customers read short bubbles; a web widget can show longer ones.
CHANNEL_LIMITS = {
    "whatsapp": BubbleLimits(max_chars=320, max_bubbles=6),
    "telegram": BubbleLimits(max_chars=500, max_bubbles=6),
    "sms": BubbleLimits(max_chars=160, max_bubbles=4),
    "web": BubbleLimits(max_chars=900, max_bubbles=5),
}
DEFAULT_LIMITS = CHANNEL_LIMITS["web"]


def limits_for(channel: str | None) -> BubbleLimits:
    return CHANNEL_LIMITS.get((channel or "").lower(), DEFAULT_LIMITS)


# Lower-case forms of abbreviations after which a "." never ends a sentence.
ABBREVIATIONS = frozenset(
    """dll. dsb. dst. dkk. tsb. yth. no. nomor. jl. jln. gg. kec. kel. kab. prov. kel. rt. rw. a.n. u.p. s.d. sd.
    rp. tbk. pt. cv. bpk. bp. ibu. sdr. sdri. dr. drg. prof. ir. h. hj. tgl. hlm. tel. telp. tlp. hp. ext. min.
    maks. mis. spt. krn. dgn. utk. yg. e.g. i.e. etc. vs. st. mr. mrs. ms. no.rek. rek. a.m. p.m.""".split()
)
_SENTENCE_PUNCT = re.compile(r"[.!?…]+[\"'”’)\]]*$")
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d{1,3}[.)]|[a-zA-Z][.)])$")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)]|[a-zA-Z][.)])\s+\S")
_INITIAL = re.compile(r"^[A-Z]\.$")
_CURRENCY = frozenset({"rp", "rp.", "idr", "usd", "us$", "sgd"})
_NUMBER_START = re.compile(r"^\d")
_FENCE = re.compile(r"^\s*(```|~~~)")


# --- blocks ---------------------------------------------------------------------

def _blocks(text: str) -> tuple[list[str], int]:
    """``(blocks, n_final)``: blocks separated by blank lines outside code fences. The
    first ``n_final`` are closed by a complete blank line and can no longer change as
    text is appended; the rest (at most one) may still grow."""
    lines = text.split("\n")
    blocks, current, n_final, in_fence = [], [], 0, False
    for index, line in enumerate(lines):
        complete = index < len(lines) - 1
        if _FENCE.match(line):
            in_fence = not in_fence
            current.append(line)
            continue
        if not in_fence and not line.strip() and complete:
            if current:
                blocks.append("\n".join(current))
                current = []
            n_final = len(blocks)
            continue
        current.append(line)
    if current and "\n".join(current).strip():
        blocks.append("\n".join(current))
    cleaned = [b.strip("\n").rstrip() for b in blocks]
    return cleaned, n_final


def _units(block: str) -> list[tuple[str, bool]]:
    """Lines of a block as ``(text, splittable)`` units: a list item keeps its indented
    continuation lines, a code fence is one unit that is never split."""
    units: list[tuple[str, bool]] = []
    fence: list[str] | None = None
    for line in block.split("\n"):
        if fence is not None:
            fence.append(line)
            if _FENCE.match(line):
                units.append(("\n".join(fence), False))
                fence = None
            continue
        if _FENCE.match(line):
            fence = [line]
            continue
        if not line.strip():
            continue
        continues_item = (units and units[-1][1] and line[:1].isspace() and not _LIST_LINE.match(line)
                          and _LIST_LINE.match(units[-1][0].split("\n")[0]))
        if continues_item:
            units[-1] = (units[-1][0] + "\n" + line, True)
        else:
            units.append((line, True))
    if fence is not None:  # an unclosed fence runs to the end of the block
        units.append(("\n".join(fence), False))
    return units


# --- sentences and words ----------------------------------------------------------

def _tokens(text: str) -> list[str]:
    """Whitespace-separated words, with a currency word glued to the amount after it."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.lower() in _CURRENCY and i + 1 < len(words) and _NUMBER_START.match(words[i + 1]):
            out.append(word + " " + words[i + 1])
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def _ends_sentence(token: str, position: int, items: set[int] = frozenset()) -> bool:
    if not _SENTENCE_PUNCT.search(token):
        return False
    bare = token.rstrip("\"'”’)]")
    if bare.lower() in ABBREVIATIONS or _INITIAL.match(bare):
        return False
    if position == 0 and _LIST_MARKER.match(bare):
        return False
    if position in items:  # "langkah: 1. Buka … 2. Pilih …": the number starts an item
        return False
    return True


def _inline_items(tokens: list[str]) -> set[int]:
    """Positions of the numbers of lists written inline: "1." (or "1)") at the start or after a colon,
    then "2.", "3.", … in order. Any other "2." ends its sentence ("… di lantai 2. Kamar … lantai 3.")."""
    items: set[int] = set()
    for start, token in enumerate(tokens):
        if token in ("1.", "1)") and (start == 0 or tokens[start - 1].endswith(":")):
            items.add(start)
            want = 2
            for position in range(start + 1, len(tokens)):
                if tokens[position] == f"{want}{token[-1]}":
                    items.add(position)
                    want += 1
    return items


def _sentences(text: str) -> list[str]:
    tokens = _tokens(text)
    items = _inline_items(tokens)
    sentences, current = [], []
    for position, token in enumerate(tokens):
        current.append(token)
        if _ends_sentence(token, position, items):
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def _pack(pieces: list[str], limit: int, joiner: str) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + len(joiner) + len(piece) <= limit:
            out[-1] = out[-1] + joiner + piece
        else:
            out.append(piece)
    return out


def _split_text(text: str, limit: int) -> list[str]:
    """A unit longer than the limit: by sentence, and a sentence still too long by word."""
    pieces: list[str] = []
    for sentence in _sentences(text):
        if len(sentence) <= limit:
            pieces.append(sentence)
        else:
            pieces.extend(_pack(_tokens(sentence), limit, " "))
    return _pack(pieces, limit, " ")


def _split_block(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    bubbles: list[str] = []
    for text, splittable in _units(block):
        parts = _split_text(text, limit) if splittable and len(text) > limit else [text]
        for index, part in enumerate(parts):
            # a new unit joins the bubble being filled on a new line, if it fits
            if index == 0 and bubbles and len(bubbles[-1]) + 1 + len(part) <= limit:
                bubbles[-1] = bubbles[-1] + "\n" + part
            else:
                bubbles.append(part)
    return bubbles


def _cap(bubbles: list[str], max_bubbles: int | None) -> list[str]:
    """Over the cap, the overflow rides in the last bubble rather than being dropped."""
    if not max_bubbles or len(bubbles) <= max_bubbles:
        return bubbles
    head = bubbles[: max_bubbles - 1]
    return head + ["\n\n".join(bubbles[max_bubbles - 1:])]


def split_bubbles(text: str, *, max_chars: int, max_bubbles: int | None = None) -> list[str]:
    """Bubbles of at most ``max_chars`` (unless one word, one amount or one code block is
    longer), at most ``max_bubbles`` of them, none empty, words in their original order."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    blocks, _ = _blocks(text)
    flat = [b for block in blocks for b in _split_block(block, max_chars) if b.strip()]
    return _cap(flat, max_bubbles)


class BubbleStream:
    """Feed a reply as it streams in; get each bubble as soon as it can no longer change.
    The bubbles emitted by ``feed()`` and ``finish()`` together equal
    ``split_bubbles(whole_text)``."""

    def __init__(self, *, max_chars: int, max_bubbles: int | None = None):
        self.max_chars = max_chars
        self.max_bubbles = max_bubbles
        self.text = ""
        self._flat: list[str] = []
        self._blocks_done = 0
        self._emitted = 0

    def _release(self) -> list[str]:
        # with a cap, the last slot may still absorb overflow: hold it until the end
        room = len(self._flat) if not self.max_bubbles else min(len(self._flat), self.max_bubbles - 1)
        out = self._flat[self._emitted:room]
        self._emitted = max(self._emitted, room)
        return out

    def feed(self, delta: str) -> list[str]:
        self.text += delta
        blocks, n_final = _blocks(self.text)
        for block in blocks[self._blocks_done:n_final]:
            self._flat.extend(b for b in _split_block(block, self.max_chars) if b.strip())
        self._blocks_done = max(self._blocks_done, n_final)
        return self._release()

    def finish(self) -> list[str]:
        blocks, _ = _blocks(self.text)
        for block in blocks[self._blocks_done:]:
            self._flat.extend(b for b in _split_block(block, self.max_chars) if b.strip())
        self._blocks_done = len(blocks)
        final = _cap(self._flat, self.max_bubbles)
        out = final[self._emitted:]
        self._emitted = len(final)
        return out
