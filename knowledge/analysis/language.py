"""Whether a text is Indonesian or English, from its words: stopwords and the roots of Sastrawi's
dictionary."""

from __future__ import annotations

from knowledge.analysis.stemming import _dictionary, stem
from knowledge.analysis.tokens import _words
from knowledge.analysis.vocabulary import ENGLISH_STOPWORDS, INDONESIAN_STOPWORDS


def looks_indonesian(text: str) -> bool:
    """Whether at least half of the words of ``text`` (numbers aside) are Indonesian: an
    Indonesian stopword, or a root word of Sastrawi's dictionary as written or stemmed.
    English words are mostly not in it ("item", "bank" are); slang is not either, so
    "ongkirnya berapa" is Indonesian by "berapa" alone, "how long is the warranty" is not."""
    words = [w for w in _words(text) if not w.isdigit()]
    if not words:
        return False
    dictionary = _dictionary()
    known = sum(1 for w in words if w in INDONESIAN_STOPWORDS or dictionary.contains(w) or dictionary.contains(stem(w)))
    return 2 * known >= len(words)


# English words a question in English is made of and an Indonesian one almost never
# holds: ENGLISH_STOPWORDS without the greetings and thanks Indonesians write too ("ok
# kak", "thanks min").
_ENGLISH_MARKERS = ENGLISH_STOPWORDS - frozenset("hi hello hey ok okay thanks thank please pls sir madam".split())


def text_language(text: str) -> str | None:
    """``"id"`` or ``"en"`` when ``text`` is clearly one of them, else None (too short,
    mixed evenly, or another language). English needs two of its function words ("how",
    "is", "the", "do", "you", "to", ...) and more of them than Indonesian words; Indonesian
    needs two Indonesian words (stopwords or dictionary roots, as ``looks_indonesian``)
    and more of them. "how long is the warranty?" is English, "ada garansi gak kak?"
    Indonesian, "warranty?" and "ok" are neither."""
    words = [w for w in _words(text) if not w.isdigit()]
    english = sum(1 for w in words if w in _ENGLISH_MARKERS)
    dictionary = _dictionary()
    indonesian = sum(1 for w in words if w not in _ENGLISH_MARKERS and (
        w in INDONESIAN_STOPWORDS or dictionary.contains(w) or dictionary.contains(stem(w))))
    if english >= 2 and english > indonesian:
        return "en"
    if indonesian >= 2 and indonesian > english:
        return "id"
    return None
