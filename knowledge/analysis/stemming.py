"""Indonesian stemming: Sastrawi, the same results made fast, and corrected for everyday shop words.

Sastrawi keeps its ~30k roots in a list, tries ~40 prefix rules up to three times per word and
compiles a regex per word for the affixes it removes: ``_SetDictionary``, ``_PrefixDispatch``/
``_PrefixGuard`` and ``_PlainWordRe`` remove that cost with the same results (the tests compare
with plain Sastrawi word by word). ``stem`` skips words that cannot carry an affix and applies
``STEM_FIXES``. Imports nothing of the project.
"""

from __future__ import annotations

import re
from functools import lru_cache


class _SetDictionary:
    """Sastrawi's ArrayDictionary keeps ~30k root words in a *list* (O(n) per lookup,
    ~15 ms per unseen word); a set makes stemming ~1000x faster, same results."""

    def __init__(self, words):
        self.words = {w for w in words if w and w.strip()}

    def contains(self, word):
        return word in self.words


# The literal letters a Sastrawi prefix rule's pattern opens with: r'^meng([aiueo])(.*)$'
# -> "meng". Every one of its disambiguators starts by matching the word against one such
# pattern and returns nothing when it fails.
_RULE_PATTERN = re.compile(r"re\.match\(r'\^?([a-z]*)")


class _PrefixGuard:
    """A Sastrawi prefix visitor that is only consulted for words starting with one of
    its rules' literal prefixes. Sastrawi tries all ~40 prefix visitors, one regex each,
    up to three times per word; a visitor whose rules cannot match has no effect, so
    skipping it changes nothing (the test compares with plain Sastrawi word by word)
    and stemming runs ~1.8x faster."""

    def __init__(self, visitor, prefixes: tuple[str, ...]):
        self.visitor, self.prefixes = visitor, prefixes

    def visit(self, context):
        if context.current_word.startswith(self.prefixes):
            self.visitor.visit(context)


class _PrefixDispatch:
    """Sastrawi's prefix visitors as one: only those that can apply to the word are
    consulted, in Sastrawi's order (the guarded ones whose literal prefix the word has,
    found by its first letter, and every unguarded one). Sastrawi's loop over them
    (``Context.accept_prefix_visitors``) stops after the first visitor that removes
    something, reaches a dictionary word or stops the process; a visitor that cannot
    apply changes nothing, so skipping it changes none of those tests, except before the
    first visitor, where the loop stops at once on a word already in the dictionary: so
    does this. ~40 visitor calls a word become ~3 (the test compares with plain Sastrawi
    word by word)."""

    def __init__(self, visitors: list):
        self.visitors = visitors
        unguarded = [v for v in visitors if not isinstance(v, _PrefixGuard)]
        letters = {p[:1] for v in visitors if isinstance(v, _PrefixGuard) for p in v.prefixes}
        self._unguarded = unguarded
        self._by_letter = {
            letter: [v for v in visitors
                     if not isinstance(v, _PrefixGuard) or any(p.startswith(letter) for p in v.prefixes)]
            for letter in letters}

    def visit(self, context):
        word = context.current_word
        before = len(context.removals)
        first = True
        for visitor in self._by_letter.get(word[:1], self._unguarded):
            if isinstance(visitor, _PrefixGuard):
                if not word.startswith(visitor.prefixes):
                    continue
                visitor = visitor.visitor
            if first and visitor is not self._first_inner and (
                    context.dictionary.contains(word) or context.process_is_stopped):
                return  # Sastrawi's loop would have stopped after its (skipped) first visitor
            first = False
            visitor.visit(context)
            if (context.dictionary.contains(context.current_word) or context.process_is_stopped
                    or len(context.removals) > before):
                return

    @property
    def _first_inner(self):
        first = self.visitors[0] if self.visitors else None
        return first.visitor if isinstance(first, _PrefixGuard) else first


def _rule_prefix(disambiguator) -> str | None:
    import inspect

    try:
        found = _RULE_PATTERN.search(inspect.getsource(type(disambiguator).disambiguate))
    except (OSError, TypeError):  # no source: leave the visitor unguarded
        return None
    return found.group(1) if found and found.group(1) else None


def _guard_prefix_visitors(visitors: list) -> list:
    guarded = []
    for visitor in visitors:
        rules = getattr(visitor, "disambiguators", None)  # plain prefixes (di-, ke-, se-) have none
        prefixes = [_rule_prefix(rule) for rule in rules or ()]
        guarded.append(_PrefixGuard(visitor, tuple(prefixes)) if prefixes and all(prefixes) else visitor)
    return guarded


@lru_cache(maxsize=1)
def _dictionary() -> _SetDictionary:
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return _SetDictionary(StemmerFactory().get_words())


def plain_stemmer():
    """Sastrawi as it comes, on the set dictionary: the reference ``_stemmer`` is tested against."""
    from Sastrawi.Stemmer.Stemmer import Stemmer

    return Stemmer(_dictionary())


class _PlainWordRe:
    """Stands in for ``re`` in Sastrawi's visitor modules (``_VISITOR_MODULES``). Every
    affix they remove is recorded with ``re.sub(stem, '', word, 1)``: the word's stem used
    as a *pattern*, so nearly every new word compiled a regex of its own (2,092 compiles
    analysing the 272 FacQA passages; they also pushed Sastrawi's ~80 fixed patterns out
    of ``re``'s cache). Sastrawi only ever sees ASCII letters (``stem``), which are never
    special in a pattern, so ``str.replace`` gives the same result; any other pattern goes
    to ``re`` itself (the test compares both on every test word)."""

    def __getattr__(self, name):
        return getattr(re, name)

    @staticmethod
    def sub(pattern, repl, string, count=0, flags=0):
        if (not flags and type(pattern) is str and type(repl) is str and type(string) is str
                and pattern.isascii() and pattern.isalpha() and "\\" not in repl):
            return string.replace(pattern, repl, count or -1)
        return re.sub(pattern, repl, string, count=count, flags=flags)


_VISITOR_MODULES = tuple(f"Sastrawi.Stemmer.Context.Visitor.{name}" for name in (
    "AbstractDisambiguatePrefixRule", "RemovePlainPrefix", "RemoveDerivationalSuffix",
    "RemoveInflectionalParticle", "RemoveInflectionalPossessivePronoun"))


def _use_plain_word_re(on: bool = True) -> None:
    import importlib

    for name in _VISITOR_MODULES:
        importlib.import_module(name).re = _PlainWordRe() if on else re


@lru_cache(maxsize=1)
def _stemmer():
    _use_plain_word_re()
    stemmer = plain_stemmer()
    visitors = stemmer.visitor_provider.prefix_pisitors  # (sic) this stemmer's own list
    visitors[:] = [_PrefixDispatch(_guard_prefix_visitors(visitors))]
    return stemmer


# Every rule Sastrawi has removes one of these prefixes (plain, disambiguated, "kau"/"ku",
# "er", or an infix after a first consonant) or these suffixes: a word matching neither
# comes back unchanged, so it skips the ~40 rule objects (measured on the FacQA vocabulary:
# 44% of its words, stemming 42% faster; the test compares with Sastrawi word by word).
_MAY_HAVE_PREFIX = re.compile(r"^(?:di|ke|se|be|te|me|pe|ku|kau|er|[bcdfghjklmnpqrstvwxyz](?:el|em|er|in)[aiueo])")
_MAY_HAVE_SUFFIX = re.compile(r"(?:lah|kah|tah|pun|ku|mu|nya|is|isme|isasi|i|kan|an)$")


def may_have_affix(word: str) -> bool:
    return bool(_MAY_HAVE_PREFIX.match(word) or _MAY_HAVE_SUFFIX.search(word))


# Everyday shop words Sastrawi stems to another root that is in its dictionary: "memesan" (to
# order) to "mes", "pemesanan" to "mesan", "mengemas" (to pack) to "emas" (gold), "pengecekan"
# to "kece", "perawatan" to "awat". Found by stemming the affixed forms of 40 shop verbs (the
# others come out right); a particle or possessive after them is dropped as Sastrawi drops it.
# Changing this list needs `kb_reindex --reanalyse`.
STEM_FIXES = {
    **dict.fromkeys(["memesan", "pemesan", "pemesanan", "dipesan", "memesankan", "dipesankan"], "pesan"),
    **dict.fromkeys(["mengecek", "pengecekan"], "cek"),
    **dict.fromkeys(["mengemas", "pengemasan", "mengemaskan"], "kemas"),
    "perawatan": "rawat",
}
_PARTICLE = re.compile(r"(?:nya|lah|kah|pun|ku|mu)$")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    fixed = STEM_FIXES.get(word) or STEM_FIXES.get(_PARTICLE.sub("", word))
    if fixed:
        return fixed
    # Sastrawi knows Indonesian morphology only: other scripts, numbers, codes pass as they are.
    if len(word) <= 3 or not (word.isascii() and word.isalpha()) or not may_have_affix(word):
        return word
    stemmed = _stemmer().stem(word)
    return stemmed if stemmed and " " not in stemmed else word
