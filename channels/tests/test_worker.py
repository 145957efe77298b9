"""End to end with a real django-q2 worker: ``manage.py qcluster`` in its own process on
the test database takes the webhook's task from the broker, runs the chat pipeline
and sends the bubbles to the fake WhatsApp API, once, however often Meta redelivers."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from channels.models import InboundMessage
from channels.tests.conftest import APP_SECRET_A, WA_NUMBER_A
from channels.tests.fakes import wa_text, wa_webhook
from channels.tests.support import Cluster, post_whatsapp, wait_for
from conversations.models import Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
WA_ID = "6281234567890"


@pytest.fixture
def cluster(settings, fake_wa, tmp_path):
    settings.CHANNELS_Q_CLUSTER = None  # the run's default queue, which the cluster below serves
    c = Cluster(log_path=tmp_path / "qcluster.log", env={
        "WHATSAPP_API_BASE_URL": fake_wa.url, "WHATSAPP_API_VERSION": "v21.0", "LLM_PROVIDER": "offline",
        "EMBEDDING_PROVIDER": "fake", "Q_SYNC": "false"})
    yield c
    c.stop()


def test_a_real_worker_answers_once_with_bubbles_in_order(anon_client, kb, wa_a, fake_wa, cluster):
    kb(wa_a)
    fake_wa.customer_wrote(WA_ID)
    payload = wa_webhook(phone_number_id=WA_NUMBER_A, messages=[
        wa_text(WA_ID, "Jam buka toko hari ini sampai jam berapa dan alamatnya di mana?", "wamid.E2E")])
    for _ in range(3):  # Meta retries a webhook it thinks was not received
        assert post_whatsapp(anon_client, wa_a.pk, payload, app_secret=APP_SECRET_A).status_code == 200

    def done():
        with scopes_disabled():
            return InboundMessage.objects.filter(status__in=["done", "failed"]).first()

    inbound = wait_for(done, timeout=180, cluster=cluster, what="the worker to process the message")
    assert (inbound.status, inbound.outcome, inbound.attempts) == ("done", "replied", 1)
    with scopes_disabled():
        [reply] = Message.objects.filter(role="assistant")
        assert Message.objects.filter(role="user").count() == 1
        assert InboundMessage.objects.count() == 1
    assert len(reply.bubbles) >= 2 and fake_wa.texts(WA_ID) == reply.bubbles
