"""Pure cores: chunking, analysis, BM25 and fusion (no database)."""

from __future__ import annotations

import importlib

import pytest

from knowledge import analysis, ranking
from knowledge.ingestion import chunking
from knowledge.ingestion.chunking import chunk_sections, split_sentences
from knowledge.ingestion.parsers import Section


def words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


@pytest.mark.parametrize("text,expected", [
    ("Satu. Dua! Tiga? Empat", ["Satu.", "Dua!", "Tiga?", "Empat"]),
    ('Dia bilang "ya." Lalu pergi.', ['Dia bilang "ya."', "Lalu pergi."]),
    ("Harga Rp1.500.000 sudah termasuk PPN.", ["Harga Rp1.500.000 sudah termasuk PPN."]),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_short_paragraphs_are_packed_together_with_provenance():
    section = Section(text="Para satu.\n\nPara dua.\n\nPara tiga.", provenance={"page": 3}, context="Bab 1")
    [chunk] = chunk_sections([section], target_words=50, overlap_words=5)
    assert chunk.text == "Bab 1\nPara satu.\nPara dua.\nPara tiga."
    assert chunk.provenance == {"page": 3}


def test_paragraph_boundaries_are_preferred_and_overlap_carries_sentences():
    p1 = "Kalimat pertama ada lima kata. Kalimat kedua juga lima kata."
    p2 = "Paragraf baru mulai di sini. Ini kalimat yang terakhir ya."
    chunks = chunk_sections([Section(text=f"{p1}\n\n{p2}")], target_words=16, overlap_words=5)
    assert [c.text for c in chunks] == [p1, f"Kalimat kedua juga lima kata.\n{p2}"]
    # Too little room for the overlap: none is carried rather than overflowing the target.
    chunks = chunk_sections([Section(text=f"{p1}\n\n{p2}")], target_words=14, overlap_words=5)
    assert [c.text for c in chunks] == [p1, p2]


@pytest.mark.parametrize("target,overlap", [(20, 0), (20, 5), (7, 3), (100, 30)])
def test_every_word_is_kept_and_no_chunk_exceeds_target(target, overlap):
    sentences = [f"{words(n, f's{i}_')}." for i, n in enumerate([3, 9, 25, 4, 4, 12, 1, 30])]
    text = " ".join(sentences[:4]) + "\n\n" + " ".join(sentences[4:])
    chunks = chunk_sections([Section(text=text)], target_words=target, overlap_words=overlap)
    assert all(len(c.text.split()) <= target for c in chunks)
    seen = [w for c in chunks for w in c.text.split()]
    assert set(seen) == set(text.split())
    if overlap == 0:
        assert len(seen) == len(text.split())


def test_table_rows_are_grouped_never_split_and_know_their_rows():
    rows = [(f"Produk: P{i}; Harga: {i}000; Catatan: {words(6)}", {"sheet": "Harga", "row": i + 2}) for i in range(10)]
    chunks = chunk_sections([Section(rows=rows, context="Sheet: Harga", provenance={"sheet": "Harga"})],
                            target_words=33, overlap_words=5)
    assert [c.provenance for c in chunks] == [
        {"sheet": "Harga", "rows": [2, 4]}, {"sheet": "Harga", "rows": [5, 7]},
        {"sheet": "Harga", "rows": [8, 10]}, {"sheet": "Harga", "rows": [11, 11]},
    ]
    body = [line for c in chunks for line in c.text.splitlines()[1:]]
    assert body == [r[0] for r in rows] and all(c.text.startswith("Sheet: Harga\n") for c in chunks)


def test_a_row_longer_than_the_target_stays_whole():
    rows = [(words(50), {"row": 2}), ("short", {"row": 3})]
    chunks = chunk_sections([Section(rows=rows)], target_words=10, overlap_words=2)
    assert [c.text for c in chunks] == [words(50), "short"]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        chunk_sections([Section(text="a")], target_words=10, overlap_words=10)


@pytest.mark.parametrize("text,expected", [
    ("Pengiriman barang DIKIRIM besok", ["kirim", "barang", "kirim", "besok"]),
    ("Harga 10,08 juta", ["harga", "10", "08", "juta"]),
    ("حَبيبي habibi", ["حَبيبي", "habibi"]),
    ("return policy", ["return", "policy"]),
    ("The mis\ufb01ts \ufb01lled", ["the", "misfits", "filled"]),  # a PDF's ligatures, as typed
    ("ＧＲＡＴＩＳ ongkir", ["gratis", "kirim"]),  # full-width letters
])
def test_analysis(text, expected):
    assert analysis.tokens(text) == expected


def _sastrawi_test_words() -> list[str]:
    """Real Indonesian (FacQA), Sastrawi's root dictionary, affixed forms of those roots
    (every prefix its rules know, with suffixes) and random letter strings."""
    import csv
    import random

    from knowledge.tests.conftest import CORPUS

    with open(CORPUS / "facqa" / "valid.csv", encoding="utf-8") as handle:
        text = " ".join(row["passage"] + " " + row["question"] for row in csv.DictReader(handle))
    real = {w for w in analysis._TOKEN.findall(text.lower()) if len(w) > 3 and w.isascii() and w.isalpha()}
    rng = random.Random(7)
    roots = rng.sample(sorted(w for w in analysis._dictionary().words if w.isalpha() and len(w) > 3), 1500)
    affixed = [p + w + s for w in roots[:500] for p, s in [("me", "kan"), ("di", "i"), ("ber", "an"), ("pe", "an"),
                                                         ("ter", ""), ("", "nya"), ("ke", "an"), ("", "lah")]]
    prefixes = ["mem", "men", "meng", "meny", "be", "pem", "pen", "peng", "peny", "per", "te", "se", "ku", "kau",
                "memper", "diper", "menge", "penge", "mempe"]
    affixed += [rng.choice(prefixes) + w + rng.choice(["", "kan", "an", "i", "nya", "kah", "annya"]) for w in roots]
    noise = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10))) for _ in range(4000)]
    return [*sorted(real), *roots, *affixed, *noise]


@pytest.mark.corpus
def test_words_skipped_by_the_affix_check_are_the_words_sastrawi_leaves_alone():
    """``stem`` skips Sastrawi for words no rule of it can change; checked word by word
    against Sastrawi itself."""
    sastrawi = analysis.plain_stemmer()
    skipped = 0
    for word in _sastrawi_test_words():
        if not analysis.may_have_affix(word):
            skipped += 1
            assert sastrawi.stem_word(word) == word, word
    assert skipped > 3000  # the check does skip a good share
    assert analysis.stem("pengiriman") == "kirim" and analysis.stem("telunjuk") == sastrawi.stem_word("telunjuk")


@pytest.mark.corpus
def test_guarded_prefix_rules_stem_every_word_as_sastrawi_does():
    """The stemmer consults a prefix rule only for words starting with its literal
    prefix; the result must be Sastrawi's own, word by word, and most rules guarded."""
    plain, guarded = analysis.plain_stemmer(), analysis._stemmer()
    words = _sastrawi_test_words()
    assert [guarded.stem_word(w) for w in words] == [plain.stem_word(w) for w in words]
    [dispatch] = guarded.visitor_provider.get_prefix_visitors()
    visitors = dispatch.visitors
    assert sum(isinstance(v, analysis._PrefixGuard) for v in visitors) >= len(visitors) - 8
    assert analysis._rule_prefix(plain.visitor_provider.get_prefix_visitors()[1].disambiguators[0]) == "ber"


@pytest.mark.parametrize("query,terms", [
    ("berapa lama garansi?", ["garansi"]),
    ("garansinya berapa lama kak?", ["garansi"]),
    ("bisa cod gak?", ["cod"]),
    ("apakah ada garansi resmi?", ["garansi", "resmi"]),
    ("how long is the warranty?", ["warranty"]),
    ("produk lama masih ada?", ["produk", "lama"]),  # "lama" is the subject here, not the quantity asked
    ("berapa?", ["berapa"]),  # nothing else: the stopword searches for itself
])
def test_query_terms_drop_the_conversation_and_the_quantity_asked(query, terms):
    assert analysis.query_terms(query) == terms


@pytest.mark.parametrize("text,terms", [
    ("hrg ongkirnya brp kak?", ["harga", "kirim"]),
    ("brp lama garansinya?", ["garansi"]),
    ("bs tf ke rek bca?", ["transfer", "rekening", "bca"]),
    ("gratong gk?", ["gratis", "kirim"]),
    ("jarak maksimal 5 km", ["jarak", "maksimal", "5", "km"]),  # km: kilometre as often as kamu
])
def test_chat_spellings_are_written_out(text, terms):
    assert analysis.query_terms(text) == terms


def test_chunks_and_queries_write_chat_spellings_out_alike():
    assert analysis.tokens("Ongkir gratis, tf ke rek BCA") == ["kirim", "gratis", "transfer", "ke", "rekening", "bca"]
    assert analysis.query_terms("ongkirnya?") == ["kirim"]
    assert set(analysis.query_terms("ongkirnya?")) <= set(analysis.tokens("Ongkos kirim ke luar Jawa Rp25.000"))


def test_synonym_groups_hold_analysed_terms():
    assert {"biaya", "tarif", "cost", "fee"} <= set(analysis.synonyms("ongkos"))
    assert "sedia" in analysis.synonyms("stok")  # "tersedia", stemmed as chunks are
    assert set(analysis.synonyms("warranty")) == {"garansi", "guarantee", "jamin"}  # "jaminan", stemmed
    assert "kembali" in analysis.synonyms("refund")  # "pengembalian dana"
    assert analysis.synonyms("laptop") == ()


def test_synonym_groups_are_disjoint():
    """A term in two groups would silently belong to the last one only."""
    seen = {}
    for line in analysis.SYNONYMS:
        terms = list(dict.fromkeys(analysis.stem(w) for w in line.split()))
        assert len(terms) >= 2, line
        for term in terms:
            assert term not in seen, (term, seen.get(term), line)
            seen[term] = line


@pytest.mark.parametrize("question,terms", [
    ("how long is the warranty?", ["warranty"]),
    ("can I pay by credit card?", ["pay", "credit", "card"]),
    ("do you have a promo code", ["promo", "code"]),
    ("what is the price of this shirt?", ["price", "shirt"]),
])
def test_english_questions_keep_only_their_subject(question, terms):
    assert analysis.query_terms(question) == terms


@pytest.mark.parametrize("text,language", [
    ("how long is the warranty?", "en"), ("can I pay by credit card?", "en"), ("hi kak, do you ship to bali?", "en"),
    ("I want to order 2 bouquets for tomorrow", "en"), ("thank you so much", "en"),
    ("ada garansi gak kak?", "id"), ("Kak, buka jam berapa hari Sabtu?", "id"), ("terima kasih", "id"),
    ("Saya mau order 2 buket untuk besok", "id"),
    ("Apa nama badan penyelenggara International Science and Engineering Conference?", "id"),
    ("warranty?", None), ("ok", None), ("ok kak", None), ("thanks min", None), ("12345", None), ("", None),
])
def test_text_language(text, language):
    assert analysis.text_language(text) == language


@pytest.mark.parametrize("text,indonesian", [
    ("berapa lama garansi?", True), ("ongkirnya berapa?", True), ("bisa bayar pakai qris?", True),
    ("how long is the warranty?", False), ("can I return an item?", False), ("do you sell shoes?", False),
    ("12345", False), ("", False),
])
def test_looks_indonesian(text, indonesian):
    assert analysis.looks_indonesian(text) is indonesian


def test_query_terms_are_distinct():
    assert analysis.query_terms("kirim dikirim pengiriman ongkir biaya") == ["kirim", "biaya"]


def test_bm25_prefers_more_matches_rarer_terms_and_shorter_chunks():
    weights = {"garansi": ranking.idf(1, 100), "produk": ranking.idf(50, 100)}
    both = ranking.bm25(weights, ["garansi", "produk", "x"], avgdl=3)
    rare_only = ranking.bm25(weights, ["garansi", "y", "x"], avgdl=3)
    common_only = ranking.bm25(weights, ["produk", "y", "x"], avgdl=3)
    long_rare = ranking.bm25(weights, ["garansi"] + ["x"] * 30, avgdl=3)
    assert both > rare_only > common_only > 0 and rare_only > long_rare
    assert ranking.bm25(weights, ["nothing"], avgdl=3) == 0


@pytest.mark.parametrize("raw,mass,expected", [(0, 5, 0), (2.5, 5, 0.5), (9, 5, 1.0), (1, 0, 0)])
def test_keyword_score_is_a_share_of_the_query_mass(raw, mass, expected):
    assert ranking.keyword_score(raw, mass) == expected


PLAIN = ranking.FusionProfile(keyword_weight=0.5, vector_weight=0.5, cosine_floor=0.2, cosine_ceiling=0.8)
TIEBREAK = ranking.FusionProfile(keyword_weight=0.8, vector_weight=0.2, cosine_floor=0.2, cosine_ceiling=0.8,
                                 tiebreak_band=0.05)


@pytest.mark.parametrize("cosine,expected", [(0.1, 0.0), (0.2, 0.0), (0.5, 0.5), (0.8, 1.0), (0.95, 1.0)])
def test_vector_score(cosine, expected):
    assert ranking.vector_score(cosine, PLAIN) == pytest.approx(expected)


@pytest.mark.parametrize("profile,candidates,order", [
    # plain weighted sum: a strong vector score can overtake
    (PLAIN, [(0.9, 0.0), (0.6, 1.0), (0.1, 0.1)], [1, 0, 2]),
    # tie-break: the vector only reorders keyword near-ties (0.90 and 0.88 are within 5%)
    (TIEBREAK, [(0.9, 0.0), (0.88, 1.0), (0.5, 1.0)], [1, 0, 2]),
    (TIEBREAK, [(0.9, 0.0), (0.6, 1.0), (0.5, 1.0)], [0, 1, 2]),
    # no lexical match at all: the vector decides alone
    (TIEBREAK, [(0.0, 0.2), (0.0, 0.9)], [1, 0]),
    # both contain every query term (keyword score capped at 1.0) but BM25 tells them
    # apart by more than the band: BM25 order stands, the vector does not reorder them
    (TIEBREAK, [(1.0, 0.0, 9.0), (1.0, 1.0, 7.0), (0.4, 1.0, 2.0)], [0, 1, 2]),
    # ... and within the band (8.7 is 3.3% below 9.0; the band is 5%) the vector decides
    (TIEBREAK, [(1.0, 0.0, 9.0), (1.0, 1.0, 8.7), (0.4, 1.0, 2.0)], [1, 0, 2]),
])
def test_rank_fused(profile, candidates, order):
    ranked = ranking.rank_fused(candidates, profile)
    assert [i for i, _ in ranked] == order
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_the_embedders_best_keeps_a_seat_in_the_top_five():
    # Seven keyword-led candidates; the last shares only common words (keyword 0.3) but
    # is the embedder's clear best. Without the seat it is seventh, with it fifth.
    candidates = [(1.0 - i / 10, 0.1, 9.0 - i) for i in range(6)] + [(0.3, 0.9, 0.5)]
    assert [i for i, _ in ranking.rank_fused(candidates, TIEBREAK, semantic_seat=None)] == [0, 1, 2, 3, 4, 5, 6]
    ranked = ranking.rank_fused(candidates, TIEBREAK)
    assert [i for i, _ in ranked] == [0, 1, 2, 3, 6, 4, 5]
    scores = [s for _, s in ranked]
    own = {i: ranking.fuse(k, v, TIEBREAK, True) for i, (k, v, _) in enumerate(candidates)}
    assert scores == sorted(scores, reverse=True) and all(s <= own[i] + 1e-12 for i, s in ranked)
    assert scores[4] == pytest.approx(own[6])  # its own score, and nothing below it scores more
    # already in the top five: nothing moves
    assert [i for i, _ in ranking.rank_fused(candidates[:4] + candidates[6:], TIEBREAK)] == [0, 1, 2, 3, 4]
    # not relevant on its own (0.8 * 0.1 + 0.2 * 0.9 = 0.26): no seat, the keyword hit keeps it
    weak = candidates[:6] + [(0.1, 0.9, 0.5)]
    assert ranking.fuse(0.1, 0.9, TIEBREAK, True) < ranking.RELEVANCE_THRESHOLD
    assert [i for i, _ in ranking.rank_fused(weak, TIEBREAK)] == [0, 1, 2, 3, 4, 5, 6]
    # a plain weighted sum gets the same seat (0.425 under five of 0.475)
    plain = [(0.95, 0.0)] * 6 + [(0.0, 0.85)]
    assert [i for i, _ in ranking.rank_fused(plain, PLAIN)][:5] == [0, 1, 2, 3, 6]


def test_a_vector_score_alone_for_an_indonesian_query_needs_a_higher_cosine_with_minilm():
    minilm = ranking.fusion_profile("local:all-MiniLM-L6-v2")
    alone = ranking.alone_profile(minilm, indonesian=True)
    # MiniLM: 0.58 is where any two Indonesian texts land; it is relevant in English only
    assert ranking.vector_score(0.58, minilm) > ranking.RELEVANCE_THRESHOLD > ranking.vector_score(0.58, alone)
    assert ranking.vector_score(0.775, alone) == pytest.approx(ranking.RELEVANCE_THRESHOLD, abs=1e-3)
    assert ranking.alone_profile(minilm, indonesian=False) is minilm
    gemini = ranking.fusion_profile("gemini:gemini-embedding-001:768")
    assert ranking.alone_profile(gemini, indonesian=True) is gemini  # multilingual: one range


def test_vector_scores_clipped_to_zero_stay_in_cosine_order():
    alone = ranking.alone_profile(ranking.fusion_profile("local:all-MiniLM-L6-v2"), indonesian=True)
    cosines = [0.3, 0.6, 0.5, 0.7]
    ranked = ranking.rank_fused([(0.0, ranking.vector_score(c, alone), 0.0, c) for c in cosines], alone)
    assert [i for i, _ in ranked] == [3, 1, 2, 0]


def test_fusion_profiles_cover_every_embedder():
    assert ranking.fusion_profile("local:all-MiniLM-L6-v2").tiebreak_band is not None
    assert ranking.fusion_profile("gemini:gemini-embedding-001:384").tiebreak_band is None
    assert ranking.fusion_profile("anything-else") is ranking.FUSION_PROFILES[-1][1]


@pytest.mark.parametrize("text,terms,expected", [
    ("a a b", ["a", "b", "c"], {"a": 2, "b": 1, "c": 0}),
    ("kirim kirimkan kirim", ["kirim"], {"kirim": 2}),
    ("", ["x"], {"x": 0}),
])
def test_term_counts(text, terms, expected):
    assert ranking.term_counts(text, terms) == expected
    assert ranking.bm25_counts({"a": 1.0}, {"a": 2}, 3, 3.0) == ranking.bm25({"a": 1.0}, ["a", "a", "b"], 3.0)


@pytest.mark.parametrize("text", [
    "a a b", "b a a a c a", "a", "", "aa a ab ba a", "c b", "kirim kirimkan kirim kirim", "a b a b a",
])
def test_bm25_scorer_agrees_with_counting_terms(text):
    weights = {"a": 1.3, "b": 0.4, "kirim": 2.0, "zz": 5.0}
    terms = text.split()
    scorer = ranking.Bm25Scorer(weights, avgdl=4.0)
    assert scorer(text, len(terms)) == pytest.approx(ranking.bm25(weights, terms, 4.0), abs=1e-12)
    assert ranking.Bm25Scorer({}, avgdl=4.0)(text, len(terms)) == 0.0


# --- Chunks are bounded in characters too (text without spaces, CJK, huge table rows) -------------------------------

def test_cjk_full_stops_end_sentences_without_a_space():
    assert split_sentences("我们九点开门。晚上九点关门！真的吗？「好。」然后") == [
        "我们九点开门。", "晚上九点关门！", "真的吗？", "「好。」", "然后"]


@pytest.mark.parametrize("text", [
    "我们的商店每天上午九点开门，晚上九点关门。" * 3000,  # 63,000 characters, no space: one "word" before
    "x" * 50_000,  # a one-line file without a break anywhere
    ",".join(f"kata{i:05d}" for i in range(20_000)),  # a comma-joined export: the F2 tsvector overflow's shape
])
def test_text_without_spaces_is_cut_at_the_character_cap_and_keeps_every_character(text):
    chunks = chunk_sections([Section(text=text, context="Ctx")], target_words=180, overlap_words=30)
    assert len(chunks) > 1 and all(len(c.text) <= len("Ctx\n") + 180 * chunking.CHARS_PER_WORD for c in chunks)
    body = "".join(c.text.removeprefix("Ctx\n").replace("\n", "").replace(" ", "") for c in chunks)
    assert set(body) == set(text) and len(body) >= len(text)  # nothing lost (overlap may repeat sentences)
    # every chunk's stored search terms stay far below PostgreSQL's 1 MB tsvector limit
    assert max(len(analysis.search_text(c.text)[0]) for c in chunks) < 10_000


def test_a_hard_cut_prefers_punctuation_or_a_space():
    text = ",".join(f"kata{i:05d}" for i in range(1_000))
    chunks = chunk_sections([Section(text=text)], target_words=10, overlap_words=0)
    assert all(c.text.endswith(",") for c in chunks[:-1]) and all(len(c.text) <= 120 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_a_huge_table_row_is_cut_keeping_its_provenance():
    huge = "; ".join(f"Kolom {i}: {words(5, f'v{i}_')}" for i in range(400))  # ~19k characters
    rows = [("Produk: Kopi; Harga: 85000", {"sheet": "S", "row": 2}), (huge, {"sheet": "S", "row": 3})]
    chunks = chunk_sections([Section(rows=rows, context="Sheet: S")], target_words=180, overlap_words=30)
    assert chunks[0].text == "Sheet: S\nProduk: Kopi; Harga: 85000"
    assert chunks[0].provenance == {"sheet": "S", "rows": [2, 2]}
    assert len(chunks) > 3 and all(c.provenance == {"sheet": "S", "rows": [3, 3]} for c in chunks[1:])
    assert all(len(c.text) <= len("Sheet: S\n") + 180 * chunking.CHARS_PER_WORD for c in chunks)


@pytest.mark.corpus
def test_sastrawi_removals_without_a_regex_per_word_stem_as_with_re():
    """``_PlainWordRe`` replaces ``re.sub(stem, '', word, 1)`` in Sastrawi's visitors with
    ``str.replace``: every test word must stem, and record its removed affixes, exactly as
    with ``re`` itself."""
    words = _sastrawi_test_words()

    def stems_and_removals():
        from Sastrawi.Stemmer.Context.Context import Context

        stemmer = analysis.plain_stemmer()
        out = []
        for word in words:
            context = Context(word, stemmer.dictionary, stemmer.visitor_provider)
            context.execute()
            out.append((context.result, [r.get_removed_part() for r in context.removals]))
        return out

    analysis._stemmer()  # installs it
    assert isinstance(importlib.import_module(analysis._VISITOR_MODULES[0]).re, analysis._PlainWordRe)
    fast = stems_and_removals()
    analysis._use_plain_word_re(False)
    try:
        assert stems_and_removals() == fast
    finally:
        analysis._use_plain_word_re(True)
    assert sum(1 for _, removed in fast if removed) > 3000  # the affix removals were exercised
    assert analysis._PlainWordRe.sub(r"^(di|ke|se)", "", "dikirim", 1) == "kirim"  # real patterns still go to re


def test_prefix_dispatch_stops_where_sastrawis_loop_would():
    """A word already in the dictionary stops Sastrawi's loop after its first visitor, even one
    that cannot apply: the dispatch must not run a later visitor on it."""
    from types import SimpleNamespace

    ran = []

    class Strip:
        def __init__(self, prefix):
            self.prefix = prefix

        def visit(self, context):
            ran.append(self.prefix)
            if context.current_word.startswith(self.prefix):
                context.removals.append(self.prefix)
                context.current_word = context.current_word[len(self.prefix):]

    def context(word, words):
        return SimpleNamespace(current_word=word, removals=[], process_is_stopped=False,
                               dictionary=SimpleNamespace(contains=lambda w: w in words))

    dispatch = analysis._PrefixDispatch([analysis._PrefixGuard(Strip("me"), ("me",)), Strip("ber")])
    found = context("berkas", {"berkas", "kas"})
    dispatch.visit(found)
    assert (found.current_word, ran) == ("berkas", [])
    unknown = context("berkata", {"kata"})
    dispatch.visit(unknown)
    assert (unknown.current_word, unknown.removals, ran) == ("kata", ["ber"], ["ber"])
