"""Text to terms: a chunk's analysed terms (``tokens``, ``search_text``), a query's distinct terms
without its conversational words (``query_terms``), the synonyms of a term, and the query as the
embedder is given it (``embedding_query``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from knowledge.analysis.stemming import stem
from knowledge.analysis.vocabulary import CHAT_FORMS, EMBEDDING_FORMS, QUANTITY_WORDS, QUERY_STOPWORDS, SYNONYMS

MAX_TERM_LENGTH = 60  # longer "words" are ids, hashes or base64: not worth indexing
# Word characters plus combining marks (Arabic harakat, Latin accents typed as
# combining characters), which \w alone would split words at.
_TOKEN = re.compile(r"(?:\w|[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670])+", re.UNICODE)


def _words(text: str) -> list[str]:
    """Lower-cased tokens of ``text``, chat spellings written out. NFKC first: a PDF's
    ligatures ("mis\ufb01ts"), full-width letters and superscripts become the letters a
    customer types, in chunks and queries alike."""
    out = []
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if len(token) > MAX_TERM_LENGTH or token == "_":
            continue
        full = CHAT_FORMS.get(token) or (token.endswith("nya") and CHAT_FORMS.get(token[:-3]))
        out.extend(full.split() if full else (token,))
    return out


def tokens(text: str) -> list[str]:
    """Analysed terms of ``text`` in order (repeats kept: BM25 counts them)."""
    return [stem(t) for t in _words(text)]


def search_text(text: str) -> tuple[str, int]:
    """The stored form of a chunk: its terms joined by spaces, and how many there are."""
    terms = tokens(text)
    return " ".join(terms), len(terms)


@lru_cache(maxsize=1)
def _synonym_groups() -> dict[str, tuple[str, ...]]:
    groups = {}
    for line in SYNONYMS:
        stems = tuple(dict.fromkeys(stem(w) for w in line.split()))
        for term in stems:
            groups[term] = tuple(t for t in stems if t != term)
    return groups


@lru_cache(maxsize=1024)
def _synonym_groups_with(extra: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The built-in groups and a tenant's own (``Tenant.synonyms``), analysed as chunks are; a
    term in both has the words of both."""
    groups = {term: dict.fromkeys(others) for term, others in _synonym_groups().items()}
    for line in extra:
        terms = list(dict.fromkeys(t for word in line.split() for t in tokens(word)))
        for term in terms:
            groups.setdefault(term, {}).update(dict.fromkeys(t for t in terms if t != term))
    return {term: tuple(others) for term, others in groups.items() if others}


def synonyms(term: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The other words of an analysed term's synonym group (none for most terms); ``extra``:
    the tenant's own groups (``Tenant.synonyms``), each a string of words."""
    return (_synonym_groups_with(extra) if extra else _synonym_groups()).get(term, ())


_WORD_OF_QUERY = re.compile(r"\w+", re.UNICODE)


def embedding_query(query: str) -> str:
    """The query as the embedder is given it: chat spellings written out ("tokonya dmn kak" →
    "tokonya dimana kak", "ongkir" → "ongkos kirim"), the rest as typed. The models learnt the
    written words; on shop-FAQ questions written as customers write (benchmarks/data/
    shop_faq_tune.json) this put the answering entry first by vector for 79.2% against 75.5%."""

    def written_out(match: re.Match) -> str:
        word = match.group(0)
        lower = word.lower()
        if lower in EMBEDDING_FORMS:
            return EMBEDDING_FORMS[lower]
        if lower.endswith("nya") and lower[:-3] in EMBEDDING_FORMS:
            return EMBEDDING_FORMS[lower[:-3]] + "nya"
        return word

    return _WORD_OF_QUERY.sub(written_out, query)


@lru_cache(maxsize=4096)
def name_terms(name: str) -> frozenset[str]:
    """The analysed terms of a business's own name ("Kopi Senja": kopi, senja)."""
    return frozenset(tokens(name or ""))


def query_terms(query: str, context: frozenset[str] = frozenset()) -> list[str]:
    """Distinct terms of a query, in first-seen order, without conversational stopwords,
    the quantity asked for ("berapa lama") or ``context`` terms (the business's own name:
    "kak, kopi senja itu punya siapa?" asks Kopi Senja who owns it, and the entries that
    merely name the shop answer nothing of it), unless nothing else is left: "terima kasih"
    still searches for itself, "kopi senja" for the shop."""
    words = _words(query)
    content = [w for i, w in enumerate(words) if w not in QUERY_STOPWORDS
               and not (w in QUANTITY_WORDS and i and words[i - 1] in ("berapa", "how"))] or words
    terms = list(dict.fromkeys(stem(w) for w in content))
    return [t for t in terms if t not in context] or terms
