from __future__ import annotations

import uuid

import pytest

from channels.tests.fakes import FakeTelegram, FakeWhatsApp

WA_NUMBER_A, WA_NUMBER_B = "109000000000001", "109000000000002"
WA_TOKEN_A, WA_TOKEN_B = "EAAGtokenForTenantA0000000000", "EAAGtokenForTenantB0000000000"
APP_SECRET_A, APP_SECRET_B = "app-secret-of-tenant-a", "app-secret-of-tenant-b"
TG_TOKEN_A = "7000000001:AAHtokenOfTenantA_abcdefghijklmnopqrs"
TG_TOKEN_B = "7000000002:AAHtokenOfTenantB_abcdefghijklmnopqrs"
TG_SECRET_A, TG_SECRET_B = "tg-secret-tenant-a", "tg-secret-tenant-b"


@pytest.fixture(autouse=True)
def _channel_settings(settings):
    settings.EMBEDDING_PROVIDER = "fake"  # deterministic, no model files
    settings.LLM_PROVIDER = "offline"
    settings.CHANNEL_HTTP_TIMEOUT_SECONDS = 5.0
    # A queue of this test's own: nothing else takes its tasks, and the tests can count them.
    settings.CHANNELS_Q_CLUSTER = f"channels-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fake_wa(settings):
    fake = FakeWhatsApp(version="v21.0").start()
    settings.WHATSAPP_API_BASE_URL = fake.url
    settings.WHATSAPP_API_VERSION = "v21.0"
    yield fake
    fake.stop()


@pytest.fixture
def fake_tg(settings):
    fake = FakeTelegram().start()
    settings.TELEGRAM_API_BASE_URL = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def wa_a(tenant_a, fake_wa):
    """Tenant A on WhatsApp, its number known to the fake Graph API."""
    from channels.services import channel_config_update

    fake_wa.add_number(WA_NUMBER_A, WA_TOKEN_A)  # Meta knows the number: enabling verifies it
    channel_config_update(tenant=tenant_a, data={"whatsapp": {
        "enabled": True, "phone_number_id": WA_NUMBER_A, "access_token": WA_TOKEN_A, "app_secret": APP_SECRET_A,
        "verify_token": "verify-me-a"}})
    return tenant_a


@pytest.fixture
def wa_b(tenant_b, fake_wa):
    from channels.services import channel_config_update

    fake_wa.add_number(WA_NUMBER_B, WA_TOKEN_B)  # Meta knows the number: enabling verifies it
    channel_config_update(tenant=tenant_b, data={"whatsapp": {
        "enabled": True, "phone_number_id": WA_NUMBER_B, "access_token": WA_TOKEN_B, "app_secret": APP_SECRET_B,
        "verify_token": "verify-me-b"}})
    return tenant_b


@pytest.fixture
def tg_a(tenant_a, fake_tg):
    from channels.services import channel_config_update

    fake_tg.add_bot(TG_TOKEN_A)  # enabling asks getMe
    channel_config_update(tenant=tenant_a, data={"telegram": {
        "enabled": True, "bot_token": TG_TOKEN_A, "webhook_secret": TG_SECRET_A}})
    return tenant_a


@pytest.fixture
def tg_b(tenant_b, fake_tg):
    from channels.services import channel_config_update

    fake_tg.add_bot(TG_TOKEN_B)  # enabling asks getMe
    channel_config_update(tenant=tenant_b, data={"telegram": {
        "enabled": True, "bot_token": TG_TOKEN_B, "webhook_secret": TG_SECRET_B}})
    return tenant_b


@pytest.fixture
def queue(settings, django_capture_on_commit_callbacks):
    """The tasks this test enqueued, run the way a worker runs them (see support.run_queued)."""
    from channels.tests.support import QueueProbe

    return QueueProbe(settings.CHANNELS_Q_CLUSTER, django_capture_on_commit_callbacks)


KB_ENTRIES = [
    {"title": "Jam buka dan alamat",
     "content": "Toko Bunga Melati buka setiap hari pukul 08.00 sampai 20.00 WIB. "
                "Alamat toko di Jl. Merdeka No. 12, Bandung. Parkir tersedia di depan toko. "
                "Pada hari libur nasional toko tetap buka dengan jam yang sama."},
    {"title": "Pengiriman",
     "content": "Pengiriman dalam kota Bandung gratis untuk pesanan di atas Rp 300.000. "
                "Pesanan sebelum pukul 14.00 dikirim di hari yang sama."},
]


@pytest.fixture
def kb():
    """Put the flower shop's knowledge into a tenant: ``kb(tenant)``."""
    def load(tenant):
        from knowledge.services import entries_upsert
        from tenants.scoping import tenant_scope

        with tenant_scope(tenant):
            entries_upsert(tenant=tenant, entries=[dict(e) for e in KB_ENTRIES])
        return tenant

    return load


@pytest.fixture
def receiver():
    from channels.tests.support import EventReceiver

    r = EventReceiver()
    yield r
    r.stop()


@pytest.fixture
def hooked(receiver, settings):
    """Point a tenant's webhook_url at the local receiver, opened (that address and port only)
    to the outbound client as an installation would with OUTBOUND_ALLOWED_PRIVATE_HOSTS."""
    def hook(tenant):
        from tenants.models import Tenant

        settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{receiver.port}"]
        Tenant.objects.filter(pk=tenant.pk).update(webhook_url=receiver.url)
        tenant.refresh_from_db()
        return tenant

    return hook
