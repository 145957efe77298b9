"""How text becomes search terms, the same way for chunks and for queries. Pure: no ORM, no I/O.

Lower-cased ``\\w+`` tokens, each stemmed with Sastrawi (PostgreSQL has no Indonesian stemmer,
so "pengiriman", "dikirim" and "kirim" are made one term here and PostgreSQL only sees the result
through the ``simple`` configuration). English words mostly pass through Sastrawi unchanged.

- ``stemming``: Sastrawi, made fast (a set dictionary, only the prefix rules that can apply,
  no regex compiled per word) and corrected for everyday shop words (``stem``);
- ``vocabulary``: the word lists: chat spellings, the built-in synonym groups, the stopwords
  a query drops;
- ``tokens``: text to terms (``tokens``, ``search_text``), a query's terms (``query_terms``),
  synonyms of a term, and the query as the embedder is given it (``embedding_query``);
- ``typos``: the roots a misspelt word may have (``root_guesses``, ``typo_probes``);
- ``language``: whether a text is Indonesian or English (``looks_indonesian``, ``text_language``).

Changing what any of them produces for a chunk needs ``kb_reindex --reanalyse``. Code inside
``knowledge`` uses ``knowledge.analysis.<name>`` as before; the names below are the ones other
modules, ``benchmarks/`` and the tests use (the private ones: the stemmer's own tests).
"""

from knowledge.analysis.language import looks_indonesian, text_language
from knowledge.analysis.stemming import (
    _VISITOR_MODULES, _dictionary, _PlainWordRe, _PrefixDispatch, _PrefixGuard, _rule_prefix, _stemmer,
    _use_plain_word_re, may_have_affix, plain_stemmer, stem,
)
from knowledge.analysis.tokens import (
    _TOKEN, MAX_TERM_LENGTH, embedding_query, name_terms, query_terms, search_text, synonyms, tokens,
)
from knowledge.analysis.typos import one_edit_apart, root_guesses, typo_probes
from knowledge.analysis.vocabulary import (
    CHAT_FORMS, EMBEDDING_FORMS, ENGLISH_STOPWORDS, INDONESIAN_STOPWORDS, QUANTITY_WORDS, QUERY_STOPWORDS, SYNONYMS,
)

__all__ = [
    "CHAT_FORMS", "EMBEDDING_FORMS", "ENGLISH_STOPWORDS", "INDONESIAN_STOPWORDS", "MAX_TERM_LENGTH", "QUANTITY_WORDS",
    "QUERY_STOPWORDS", "SYNONYMS", "embedding_query", "looks_indonesian", "may_have_affix", "name_terms",
    "one_edit_apart", "plain_stemmer", "query_terms", "root_guesses", "search_text", "stem", "synonyms",
    "text_language", "tokens", "typo_probes",
    # the stemmer's internals, for its tests
    "_PlainWordRe", "_PrefixDispatch", "_PrefixGuard", "_TOKEN", "_VISITOR_MODULES", "_dictionary", "_rule_prefix",
    "_stemmer", "_use_plain_word_re",
]
