"""Markdown: one section per heading, carrying the heading path ("Pengiriman > Biaya"), as far
as CommonMark's headings, fences and front matter go. API entries are split the same way
(``split_markdown``).
"""

from __future__ import annotations

import re

from knowledge.ingestion.common import Section
from knowledge.ingestion.decoding import decode_text

# CommonMark, as far as a heading path needs it: an ATX heading is indented 0-3 spaces and its optional closing
# "#"s follow a space ("## Kursus C#" keeps its "#"); a setext heading is one paragraph line underlined by "=" (h1)
# or "-" (h2); a fence closes only with the character it opened with, at least as many times.
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}(?!.*`)|~{3,})")
#: lines that are no paragraph text, so a "---" under them is a thematic break: list items, quotes, table rows,
#: indented code, headings, fences
_NOT_PARAGRAPH = re.compile(r"^(?: {4}|\t| {0,3}(?:[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|>|\||#|`{3}|~{3}))")


def _front_matter_end(lines: list[str]) -> int:
    """The number of lines of a YAML front matter block ("---" ... "---" or "..."), 0 if there is none: its closing
    "---" under "title: ..." is no setext heading."""
    if lines and lines[0].strip() == "---":
        for index, line in enumerate(lines[1:200], start=1):
            if line.strip() in ("---", "..."):
                return index + 1
    return 0


def split_markdown(text: str) -> list[Section]:
    """One section per heading, carrying the heading path ("Pengiriman > Biaya")."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buffer: list[str] = []
    fence: str | None = None  # the opening fence's run of ` or ~ while inside a code block
    lone_line = False  # the last line is a paragraph's first line, which a setext underline makes a heading

    def flush():
        body = "\n".join(buffer).strip()
        buffer.clear()
        if body:
            headings = [h for _, h in path]
            sections.append(Section(text=body, context=" > ".join(headings),
                                    provenance={"heading_path": headings} if headings else {}))

    def heading(level: int, title: str):
        nonlocal path
        flush()
        path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, title)]

    lines = text.splitlines()
    front = _front_matter_end(lines)
    buffer.extend(lines[:front])
    after_break = True  # at the start, or after a blank line, a heading or a code block
    for line in lines[front:]:
        if fence is not None:
            buffer.append(line)
            closing = line.strip()
            if closing and set(closing) == {fence[0]} and len(closing) >= len(fence) and len(line) - len(
                    line.lstrip(" ")) < 4:
                fence, after_break = None, True
            continue
        if opening := _FENCE.match(line):
            fence, lone_line = opening.group(1), False
            buffer.append(line)
            continue
        if lone_line and (underline := _SETEXT.match(line)):
            title = buffer.pop().strip()
            heading(1 if underline.group(1)[0] == "=" else 2, title)
            lone_line, after_break = False, True
            continue
        atx = _ATX.match(line)
        if atx and (atx.group(2) or "").strip():
            heading(len(atx.group(1)), atx.group(2).strip())
            lone_line, after_break = False, True
            continue
        blank = not line.strip()
        lone_line = after_break and not blank and not _NOT_PARAGRAPH.match(line) and not _SETEXT.match(line)
        after_break = blank
        buffer.append(line)
    flush()
    if not sections and path:  # headings only
        sections.append(Section(text=" > ".join(h for _, h in path), provenance={"heading_path": [h for _, h in path]}))
    return sections


def parse_markdown(data: bytes) -> list[Section]:
    return split_markdown(decode_text(data)[0])
