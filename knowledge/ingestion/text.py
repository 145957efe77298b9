"""Plain text: the whole file, decoded, as one section (the chunker splits it by paragraphs and
sentences).
"""

from __future__ import annotations

from knowledge.ingestion.common import Section
from knowledge.ingestion.decoding import decode_text


def parse_text(data: bytes) -> list[Section]:
    text = decode_text(data)[0]
    return [Section(text=text)] if text.strip() else []
