"""Roots a misspelt word may have, found without the stemmer's dictionary (``root_guesses``), the
probes a query term the tenant does not know is searched with (``typo_probes``), and whether two
words are one edit apart.
"""

from __future__ import annotations

from knowledge.analysis.stemming import _dictionary, stem
from knowledge.analysis.tokens import _words


# Prefixes and suffixes a misspelt word may still carry, for ``root_guesses``; a nasal prefix
# before a vowel may stand for a root's dropped first letter (peng+irim = kirim, pem+akai =
# pakai, pen+ulis = tulis, peny+ewa = sewa).
_GUESS_PREFIXES = (("meny", "s"), ("peny", "s"), ("meng", "k"), ("peng", "k"), ("meng", ""), ("peng", ""),
                   ("mem", "p"), ("pem", "p"), ("mem", ""), ("pem", ""), ("men", "t"), ("pen", "t"), ("men", ""),
                   ("pen", ""), ("ber", ""), ("ter", ""), ("per", ""), ("me", ""), ("pe", ""), ("di", ""), ("ke", ""))
_GUESS_SUFFIXES = ("kannya", "annya", "nya", "kan", "an", "i")
MAX_ROOT_GUESSES = 8
# Chat drops the vowel of a prefix: "pmbayaran", "pngiriman", "mngirim", "brapa", "trima", "dkirim". The vowel
# put back makes a word Sastrawi can stem. Only where a prefix's own consonant follows (pem-, pen-, peng-, per-,
# mem-, men-, ber-, ter-; di- before anything but r): English words open with other clusters, and "blank" read as
# "be-lank" had become "bank", "player" "layer".
_DROPPED_PREFIX_VOWEL = {"p": ("e", "mnr"), "m": ("e", "mn"), "b": ("e", "r"), "t": ("e", "r"),
                         "d": ("i", "bcdfghjkmnpstvz")}


def root_guesses(word: str) -> list[str]:
    """Roots a word Sastrawi could not stem may have, by stripping affixes without its
    dictionary: a misspelt affixed word ("pembyaran", "pengirman") is left whole by the stemmer,
    and as a whole it is too far from the stored root ("bayar", "kirim") for a trigram match; a
    guess ("byar", "kirm") is one edit from it. Most stripped first; at most ``MAX_ROOT_GUESSES``."""
    if not (word.isascii() and word.isalpha()):
        return []
    restored = _vowel_restored(word)
    if len(word) < 6:
        return restored
    bodies = [word[:-len(suffix)] for suffix in _GUESS_SUFFIXES
              if word.endswith(suffix) and len(word) - len(suffix) >= 4]
    guesses = []
    for body in [*bodies, word]:
        for prefix, first in _GUESS_PREFIXES:
            rest = body[len(prefix):]
            if body.startswith(prefix) and (not first or rest[:1] in "aiueo"):
                guesses.append(first + rest)
    guesses += bodies
    guesses = [g for g in dict.fromkeys(guesses) if len(g) >= 4 and g != word]
    return list(dict.fromkeys([*restored, *sorted(guesses, key=len)]))[:MAX_ROOT_GUESSES]


def _vowel_restored(word: str) -> list[str]:
    """``word`` with its prefix's dropped vowel put back, as the dictionary knows it: the root of
    "pmbayaran" (pembayaran: "bayar"), or the word itself ("trima": "terima"); first among the
    guesses, as the surest."""
    vowel, next_letters = _DROPPED_PREFIX_VOWEL.get(word[:1], ("", ""))
    if not vowel or len(word) < 4 or word[1] not in next_letters:
        return []
    restored = word[0] + vowel + word[1:]
    root = stem(restored)
    if root == restored:  # a word of its own ("trima": "terima")
        return [root] if _dictionary().contains(root) else []
    # The prefix must take more than the restored letter's neighbour: "bring" (be-ring) and "trial" (te-rial)
    # lose one letter only; "pmbayaran" (pem-bayar-an), "mngirim" (meng-kirim) more. "dkirim" (di-kirim) is
    # the plain prefix di- and keeps the rest whole.
    consumed = len(word) - len(root)
    if len(root) < 4 or not _dictionary().contains(root) or (consumed < 2 and word[0] != "d"):
        return []
    return [root]


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with at most one letter inserted, deleted, replaced or two
    neighbours swapped (Damerau-Levenshtein distance ≤ 1)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


def typo_probes(query: str, term: str) -> list[str]:
    """Root guesses for a query term the tenant does not know: from the term and from the
    query's words it was stemmed from (Sastrawi may have half-stemmed a misspelt word:
    "pengembalan" to "embal", while the word itself gives "kembal"). None for a term that is a
    word of Sastrawi's dictionary: a correctly spelt word the tenant does not use is not a typo,
    and its guesses matched unrelated terms ("terbukti" → "bukt" → "buka", "terbang" → "bank")."""
    if _dictionary().contains(term):
        return []
    words = [w for w in _words(query) if w != term and stem(w) == term]
    return list(dict.fromkeys(g for w in (term, *words) for g in root_guesses(w)))[:MAX_ROOT_GUESSES]
