"""A change of embedding model: until ``kb_reembed`` has moved a tenant, its searches compare the
vectors of one model only (the one its chunks have, or none), say so in ``scores.plan``, and
``kb_reembed`` moves it tenant by tenant, resuming after an interruption. The fake embedder's
variants stand for two models: the same words, other directions."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agent_project.lib.embeddings import EmbeddingError, FakeEmbedder
from knowledge import analysis
from knowledge.models import Chunk, CorpusStats
from knowledge.selectors import chunk_search
from knowledge.services import entries_upsert

FAQ = [
    ("Garansi", "Semua elektronik bergaransi resmi 12 bulan."),
    ("Jam buka", "Toko buka setiap hari pukul 09.00 sampai 21.00."),
    ("Pengiriman", "Pengiriman lewat JNE dan J&T ke seluruh Indonesia."),
    ("Pembayaran", "Bayar lewat transfer BCA atau QRIS."),
    ("Retur", "Barang cacat bisa ditukar dalam 7 hari."),
    ("Parkir", "Parkir gratis di depan toko."),
    ("Kopi", "Kopi arabika gayo disangrai setiap minggu."),
]


def _ingest(tenant, scoped, entries):
    with scoped(tenant):
        entries_upsert(tenant=tenant, entries=[{"title": t, "content": c, "external_id": t} for t, c in entries])


def _models(tenant, scoped) -> dict:
    with scoped(tenant):
        return dict(CorpusStats.objects.values_list("models", flat=True).get())


def _vector_of(tenant, scoped, chunk_id):
    with scoped(tenant):
        return np.asarray(Chunk.objects.get(pk=chunk_id).embedding, dtype=np.float32)


def test_the_statistics_count_chunks_per_model_as_they_are_written_and_deleted(settings, tenant_a, scoped):
    settings.EMBEDDING_MODEL_NAME = "old"
    _ingest(tenant_a, scoped, FAQ[:3])
    settings.EMBEDDING_MODEL_NAME = ""
    _ingest(tenant_a, scoped, FAQ[3:5])
    assert _models(tenant_a, scoped) == {"fake-old-384": 3, "fake-384": 2}
    _ingest(tenant_a, scoped, [(FAQ[0][0], FAQ[0][1] + " Klaim dengan nota.")])  # an edit: new chunks, new model
    assert _models(tenant_a, scoped) == {"fake-old-384": 2, "fake-384": 3}
    from knowledge.services.stats import stats_check

    with scoped(tenant_a):
        assert stats_check(tenant=tenant_a).ok


def test_a_tenant_still_on_the_old_model_is_searched_with_it(settings, tenant_a, scoped):
    settings.EMBEDDING_MODEL_NAME = "old"
    _ingest(tenant_a, scoped, FAQ)
    settings.EMBEDDING_MODEL_NAME = ""  # the configured model changed; tenant a was not re-embedded
    query = "garansi resmi berapa bulan"
    with scoped(tenant_a):
        hits = chunk_search(tenant=tenant_a, query=query, k=3)
    assert hits[0].title == "Garansi"
    assert {h.scores["model"] for h in hits} == {"fake-old-384"}
    assert all("vectors of fake-old-384" in h.scores["plan"] and "not yet re-embedded" in h.scores["plan"]
               for h in hits)
    # the cosines are the old model's, for a query vector of the old model
    old_query = FakeEmbedder(384, "old").embed_query(analysis.embedding_query(query))
    for hit in hits:
        assert hit.scores["vector"] == pytest.approx(float(_vector_of(tenant_a, scoped, hit.chunk_id) @ old_query),
                                                     abs=1e-5)


def test_a_tenant_of_two_models_compares_the_vectors_of_one(settings, tenant_a, scoped):
    settings.EMBEDDING_MODEL_NAME = "old"
    _ingest(tenant_a, scoped, FAQ[:4])
    settings.EMBEDDING_MODEL_NAME = ""
    _ingest(tenant_a, scoped, FAQ[4:])  # three entries embedded by the configured model
    with scoped(tenant_a):
        model_of = dict(Chunk.objects.values_list("id", "embedding_model"))
        for query in ("garansi resmi", "kopi arabika gayo", "parkir gratis", "toko"):
            hits = chunk_search(tenant=tenant_a, query=query, k=7)
            assert {h.scores["model"] for h in hits} == {"fake-old-384"}  # the model most chunks have
            for hit in hits:
                # a vector score only for chunks of that model; the others were found by keyword
                assert (hit.scores["vector"] is not None) == (model_of[hit.chunk_id] == "fake-old-384"), query
                assert "4 of 7 chunks" in hit.scores["plan"]
        assert chunk_search(tenant=tenant_a, query="kopi arabika gayo", k=1)[0].title == "Kopi"


def test_a_model_this_process_cannot_run_leaves_the_keyword_side(settings, tenant_a, scoped):
    settings.EMBEDDING_MODEL_NAME = "old"
    _ingest(tenant_a, scoped, FAQ)
    settings.EMBEDDING_MODEL_NAME = ""
    settings.EMBEDDING_SEARCH_OLD_MODELS = False
    with scoped(tenant_a):
        hits = chunk_search(tenant=tenant_a, query="garansi resmi", k=3)
    assert hits[0].title == "Garansi"
    assert all(h.scores["vector"] is None and h.scores["model"] is None for h in hits)
    assert all(h.scores["plan"].startswith("keyword-only") and "kb_reembed" in h.scores["plan"] for h in hits)


def test_the_api_says_which_plan_and_model_answered(settings, tenant_a, client_a):
    settings.EMBEDDING_MODEL_NAME = "old"
    client_a.post("/kb/upsert", {"title": "Garansi", "content": "Garansi resmi 12 bulan."}, format="json")
    settings.EMBEDDING_MODEL_NAME = ""
    body = client_a.post("/kb/search", {"query": "garansi", "k": 1}, format="json").json()
    assert body["hits"][0]["scores"]["model"] == "fake-old-384"
    assert "not yet re-embedded" in body["hits"][0]["scores"]["plan"]


def test_kb_reembed_resumes_after_an_interruption_and_swaps_each_tenant_at_once(
        settings, tenant_a, tenant_b, scoped, monkeypatch):
    settings.EMBEDDING_MODEL_NAME = "old"
    _ingest(tenant_a, scoped, FAQ)
    _ingest(tenant_b, scoped, FAQ[:2])
    settings.EMBEDDING_MODEL_NAME = ""
    embedded = []
    real_embed = FakeEmbedder._embed

    def failing_on_the_third_batch(self, texts, kind):
        if kind == "document":
            if len(embedded) == 2:
                raise EmbeddingError("the model went away")
            embedded.append(len(texts))
        return real_embed(self, texts, kind)

    monkeypatch.setattr(FakeEmbedder, "_embed", failing_on_the_third_batch)
    with pytest.raises(CommandError, match="run the command again to resume"):
        call_command("kb_reembed", "--tenant", tenant_a.pk, "--batch-size", "2", "--no-progress", stdout=StringIO(),
                     stderr=StringIO())
    assert embedded == [2, 2]
    # nothing swapped: every chunk still has the old model's vector, and the search uses it
    assert _models(tenant_a, scoped) == {"fake-old-384": 7}
    with scoped(tenant_a):
        assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"fake-old-384"}
        assert chunk_search(tenant=tenant_a, query="garansi", k=1)[0].scores["model"] == "fake-old-384"

    monkeypatch.setattr(FakeEmbedder, "_embed", lambda self, texts, kind: (
        embedded.append(len(texts)) if kind == "document" else None) or real_embed(self, texts, kind))
    out = StringIO()
    call_command("kb_reembed", "--all-tenants", "--batch-size", "2", "--no-progress", stdout=out)
    assert sum(embedded[2:]) == 3 + 2  # tenant a's three chunks not staged before, and tenant b's two
    report = out.getvalue()
    assert "2 of 2 tenant(s) have chunks to move" in report
    assert "tenant-a: 7 chunk(s) now on fake-384 (3 embedded now" in report
    assert "re-embedded 9 chunk(s) of 2 tenant(s)" in report and "4 chunk(s) staged by an earlier run" in report
    assert _models(tenant_a, scoped) == {"fake-384": 7} and _models(tenant_b, scoped) == {"fake-384": 2}
    new = FakeEmbedder(384)
    with scoped(tenant_a):
        for chunk in Chunk.objects.all():
            assert np.allclose(np.asarray(chunk.embedding), new.embed_documents([chunk.text])[0], atol=1e-6)
        hit = chunk_search(tenant=tenant_a, query="garansi", k=1)[0]
    assert hit.scores["model"] == "fake-384" and ";" not in hit.scores["plan"]
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM knowledge_reembed_tenant")
        assert cur.fetchone()[0] == 0  # nothing left staged


def test_chunks_added_while_a_tenant_is_staged_are_moved_with_it(settings, tenant_a, scoped, monkeypatch):
    from knowledge.services import reembed

    settings.EMBEDDING_MODEL_NAME = "old"
    _ingest(tenant_a, scoped, FAQ[:3])
    settings.EMBEDDING_MODEL_NAME = ""
    real_stage = reembed._stage_tenant
    added = []

    def stage_then_ingest(rows, embedder, tenant_id, dims, atomic=True):
        done = real_stage(rows, embedder, tenant_id, dims, atomic)
        if atomic and not added:  # a customer's upload lands between two batches
            settings.EMBEDDING_MODEL_NAME = "old"  # another process still on the old configuration
            _ingest(tenant_a, scoped, FAQ[5:6])
            settings.EMBEDDING_MODEL_NAME = ""
            added.append(True)
        return done

    monkeypatch.setattr(reembed, "_stage_tenant", stage_then_ingest)
    with scoped(tenant_a):
        result = reembed.chunks_reembed(tenant=tenant_a, batch_size=1)
        assert result.chunks == 4
        assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"fake-384"}
    assert _models(tenant_a, scoped) == {"fake-384": 4}
