from __future__ import annotations

import pytest

from conversations.tests.fakes import FakeServer


@pytest.fixture(autouse=True)
def _chat_settings(settings):
    # the fake embedder is deterministic and needs no model files; offline needs no account
    settings.EMBEDDING_PROVIDER = "fake"
    settings.LLM_PROVIDER = "offline"
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_RETRY_INITIAL_DELAY = 0.01
    settings.LLM_RETRY_MAX_DELAY = 0.05
    settings.LLM_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def fake_gemini(settings):
    server = FakeServer().start()
    settings.LLM_PROVIDER = "gemini"
    settings.GEMINI_API_KEY = "test-gemini-key"
    settings.GEMINI_BASE_URL = server.url
    settings.LLM_MODEL = "gemini-2.5-flash"
    settings.LLM_FALLBACK_MODEL = ""
    yield server
    server.stop()


@pytest.fixture
def fake_openai(settings):
    server = FakeServer().start()
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = server.url + "/v1"
    settings.LLM_API_KEY = "sk-test-openai"
    settings.LLM_MODEL = "llama3.1:8b"
    settings.LLM_FALLBACK_MODEL = ""
    yield server
    server.stop()


KB_ENTRIES = [
    {"title": "Jam buka dan alamat",
     "content": "Toko Bunga Melati buka setiap hari pukul 08.00 sampai 20.00 WIB. "
                "Alamat toko di Jl. Merdeka No. 12, Bandung. Parkir tersedia di depan toko."},
    {"title": "Daftar harga buket",
     "content": "Buket mawar merah isi 12 tangkai harganya Rp 350.000. Buket tulip isi 10 tangkai Rp 500.000. "
                "Harga sudah termasuk kartu ucapan."},
    {"title": "Pengiriman",
     "content": "Pengiriman dalam kota Bandung gratis untuk pesanan di atas Rp 300.000. "
                "Pesanan sebelum pukul 14.00 dikirim di hari yang sama."},
]


@pytest.fixture
def kb_a(tenant_a):
    from knowledge.services import entries_upsert
    from tenants.scoping import tenant_scope

    with tenant_scope(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[dict(e) for e in KB_ENTRIES])
    return tenant_a
