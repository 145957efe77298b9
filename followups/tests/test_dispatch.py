"""The dispatcher in this process against a local webhook receiver: signatures, 2xx/4xx/5xx,
backoff on a frozen clock, working hours, lease expiry, AI-written text."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from followups.dispatch import followups_claim, followups_deliver, followups_dispatch
from followups.models import FollowUp
from followups.tests.support import start_fake_gemini, start_receiver, stop_server, verify

pytestmark = pytest.mark.django_db

JAKARTA = ZoneInfo("Asia/Jakarta")
SATURDAY_NIGHT = datetime(2026, 11, 28, 20, 0, tzinfo=JAKARTA)
MONDAY_OPEN = datetime(2026, 11, 30, 9, 0, tzinfo=JAKARTA)


def dispatch(worker="worker-1"):
    return followups_dispatch(window_seconds=120, watch=False, worker=worker)


def reload(scoped, followup):
    with scoped(followup.tenant):
        return FollowUp.objects.get(pk=followup.pk)


def answer(status, headers=None, body=b"{}"):
    return lambda delivery, n: (status, headers or {}, body)


def test_a_due_followup_is_posted_signed_with_its_idempotency_key(tenant_a, receiver, hooked, make_contact,
                                                                  make_followup, scoped):
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant), message="Halo {first_name}, pesanan {order} siap.",
                             variables={"order": "A-12"})
    stats = dispatch()
    assert stats.as_dict() == {"claimed": 1, "sent": 1, "retried": 0, "failed": 0, "deferred": 0, "lost": 0}
    [delivery] = receiver.deliveries
    assert delivery.signature_ok
    assert not verify("whsec_someone-else", delivery.headers, delivery.body)  # the check can fail
    assert delivery.key == followup.idempotency_key == delivery.payload["idempotency_key"]
    assert delivery.headers["X-Layan-Event"] == "followup.send"
    assert abs(int(delivery.headers["X-Layan-Timestamp"]) - time.time()) < 300
    assert delivery.payload["message"] == "Halo Budi, pesanan A-12 siap."
    assert delivery.payload["tenant_id"] == tenant.pk and delivery.payload["contact"]["phone"] == "+6281234567890"
    row = reload(scoped, followup)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at and row.lease_expires_at is None
    assert (row.text_sent, row.text_origin) == ("Halo Budi, pesanan A-12 siap.", "template")
    assert dispatch().claimed == 0  # sent is sent


def test_a_4xx_is_a_permanent_failure(tenant_a, receiver, hooked, make_contact, make_followup, scoped):
    receiver.respond = answer(410, body=b'{"error":"unknown customer"}')
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant))
    assert dispatch().failed == 1
    row = reload(scoped, followup)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "http 4xx"  # the class and nothing of what the receiver said
    assert dispatch().claimed == 0 and len(receiver.deliveries) == 1


def test_5xx_retries_with_exponential_backoff_then_fails(tenant_a, receiver, hooked, make_contact, make_followup,
                                                         scoped, fast_retries):
    receiver.respond = answer(503, body=b"maintenance")
    tenant = hooked(tenant_a, receiver)
    start = datetime(2026, 11, 25, 3, 0, tzinfo=dt_timezone.utc)
    with time_machine.travel(start, tick=False) as clock:
        followup = make_followup(tenant, make_contact(tenant))
        expected_steps = [30, 60]  # base 30 s, doubling; equal jitter keeps each in [step/2, step]
        for attempt, step in enumerate(expected_steps, start=1):
            assert dispatch().retried == 1
            row = reload(scoped, followup)
            waited = (row.next_attempt_at - timezone.now()).total_seconds()
            assert row.status == "pending" and row.attempts == attempt
            assert step / 2 <= waited <= step, (attempt, waited)
            assert row.last_error == "http 5xx"
            clock.move_to(row.next_attempt_at - timedelta(seconds=1))
            assert dispatch().claimed == 0  # not a second early
            clock.move_to(row.next_attempt_at)
        assert dispatch().failed == 1
    row = reload(scoped, followup)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "gave up after 3 attempts: http 5xx"
    assert [d.key for d in receiver.deliveries] == [followup.idempotency_key] * 3
    assert [d.payload["attempt"] for d in receiver.deliveries] == [1, 2, 3]


def test_jitter_spreads_a_burst_of_failures(tenant_a, receiver, hooked, make_contact, make_followup, scoped,
                                            fast_retries):
    receiver.respond = answer(502)
    tenant = hooked(tenant_a, receiver)
    contact = make_contact(tenant)
    with time_machine.travel(datetime(2026, 11, 25, 3, 0, tzinfo=dt_timezone.utc), tick=False):
        for _ in range(20):
            make_followup(tenant, contact)
        assert dispatch().retried == 20
        now = timezone.now()
        with scoped(tenant):
            waits = [(f.next_attempt_at - now).total_seconds() for f in FollowUp.objects.all()]
    assert all(15 <= w <= 30 for w in waits)
    assert len(set(waits)) > 10  # not one thundering herd


def test_a_5xx_then_2xx_is_sent_on_the_second_attempt(tenant_a, receiver, hooked, make_contact, make_followup,
                                                      scoped, fast_retries):
    receiver.respond = lambda d, n: (500, {}, b"oops") if n == 1 else (200, {}, b"{}")
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant))
    with time_machine.travel(timezone.now(), tick=False) as clock:
        dispatch()
        clock.move_to(reload(scoped, followup).next_attempt_at)
        assert dispatch().sent == 1
    row = reload(scoped, followup)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert receiver.keys() == {followup.idempotency_key: 2}


def test_429_retry_after_is_honoured(tenant_a, receiver, hooked, make_contact, make_followup, scoped,
                                     fast_retries):
    receiver.respond = answer(429, {"Retry-After": "600"})
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant))
    with time_machine.travel(timezone.now(), tick=False):
        dispatch()
        row = reload(scoped, followup)
        assert row.status == "pending" and (row.next_attempt_at - timezone.now()).total_seconds() >= 600


def test_a_timeout_is_retried(tenant_a, hooked, make_contact, make_followup, scoped, fast_retries):
    fast_retries.FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS = 0.3

    def slow(delivery, n):
        time.sleep(1.5)
        return 200, {}, b"{}"

    receiver = start_receiver(secret="", respond=slow)
    try:
        tenant = hooked(tenant_a, receiver)
        followup = make_followup(tenant, make_contact(tenant))
        assert dispatch().retried == 1
    finally:
        stop_server(receiver.server)
    row = reload(scoped, followup)
    assert row.status == "pending" and row.last_error == "timeout"


def test_an_unreachable_receiver_is_retried(tenant_a, receiver, hooked, make_contact, make_followup, scoped,
                                            fast_retries):
    tenant = hooked(tenant_a, receiver)
    url = receiver.url
    stop_server(receiver.server)  # nobody listens on that port any more
    followup = make_followup(tenant, make_contact(tenant))
    assert dispatch().retried == 1
    row = reload(scoped, followup)
    assert row.status == "pending" and row.last_error == "connection failed", (url, row.last_error)


def test_no_webhook_configured_fails_with_the_reason(tenant_a, make_contact, make_followup, scoped):
    followup = make_followup(tenant_a, make_contact(tenant_a))
    assert dispatch().failed == 1
    assert reload(scoped, followup).last_error.startswith("webhook_not_configured")


def test_the_log_sender_needs_no_receiver(tenant_a, make_contact, make_followup, scoped, caplog):
    followup = make_followup(tenant_a, make_contact(tenant_a), channel="log", message="Halo {name}")
    with caplog.at_level("INFO", logger="followups.senders"):
        assert dispatch().sent == 1
    assert "Halo Budi Santoso" in caplog.text
    assert reload(scoped, followup).status == "sent"


def test_each_tenant_gets_its_own_webhook_and_signature(tenant_a, tenant_b, hooked, make_contact, make_followup):
    ra, rb = start_receiver(secret=""), start_receiver(secret="")
    try:
        a, b = hooked(tenant_a, ra), hooked(tenant_b, rb)
        fa = make_followup(a, make_contact(a))
        fb = make_followup(b, make_contact(b, name="Sari"))
        assert dispatch().sent == 2
        assert list(ra.keys()) == [fa.idempotency_key] and list(rb.keys()) == [fb.idempotency_key]
        assert ra.deliveries[0].signature_ok and rb.deliveries[0].signature_ok
        assert not verify(b.webhook_secret, ra.deliveries[0].headers, ra.deliveries[0].body)
    finally:
        stop_server(ra.server)
        stop_server(rb.server)


def test_a_contact_who_opted_out_after_scheduling_gets_nothing(tenant_a, receiver, hooked, make_contact,
                                                              make_followup, scoped):
    tenant = hooked(tenant_a, receiver)
    contact = make_contact(tenant)
    followup = make_followup(tenant, contact)
    with scoped(tenant):
        type(contact).objects.filter(pk=contact.pk).update(opted_out=True)
    assert dispatch().failed == 1
    assert reload(scoped, followup).last_error.startswith("contact_opted_out")
    assert receiver.deliveries == []


def test_cancelled_followups_are_never_sent(tenant_a, receiver, hooked, make_contact, make_followup):
    tenant = hooked(tenant_a, receiver)
    make_followup(tenant, make_contact(tenant), status="cancelled")
    assert dispatch().claimed == 0 and receiver.deliveries == []


# --- working hours ------------------------------------------------------------------------------

def test_outside_working_hours_it_waits_for_the_next_opening(tenant_a, receiver, hooked, make_contact,
                                                             make_followup, scoped):
    tenant = hooked(tenant_a, receiver)
    with time_machine.travel(SATURDAY_NIGHT, tick=False) as clock:
        # scheduled while the tenant had no hours (always open); hours set afterwards
        followup = make_followup(tenant, make_contact(tenant), respect_working_hours=True)
        not_respecting = make_followup(tenant, followup.contact, respect_working_hours=False)
        tenant.working_hours = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
        tenant.save()
        stats = dispatch()
        assert (stats.deferred, stats.sent) == (1, 1)
        row = reload(scoped, followup)
        assert (row.status, row.attempts) == ("pending", 0)  # waiting is not a failed attempt
        assert row.next_attempt_at == MONDAY_OPEN
        assert list(receiver.keys()) == [not_respecting.idempotency_key]
        clock.move_to(MONDAY_OPEN - timedelta(minutes=1))
        assert dispatch().claimed == 0
        clock.move_to(MONDAY_OPEN)
        assert dispatch().sent == 1
    row = reload(scoped, followup)
    assert (row.status, row.attempts) == ("sent", 1)
    assert receiver.keys()[followup.idempotency_key] == 1


# --- leases ---------------------------------------------------------------------------------------

def test_a_dead_workers_rows_are_taken_again_after_the_lease(tenant_a, receiver, hooked, make_contact,
                                                             make_followup, scoped, settings):
    settings.FOLLOWUP_LEASE_SECONDS = 120
    tenant = hooked(tenant_a, receiver)
    contact = make_contact(tenant)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        rows = [make_followup(tenant, contact) for _ in range(3)]
        claimed = followups_claim(batch_size=10, worker="dead-worker")  # ... and then it died
        assert sorted(claimed) == sorted(r.pk for r in rows)
        assert dispatch("worker-2").claimed == 0  # leased rows are not due
        clock.move_to(timezone.now() + timedelta(seconds=121))
        assert dispatch("worker-2").sent == 3
        # the dead worker comes back to life late: its claim is gone, it must not send or overwrite
        late = followups_deliver(ids=claimed, worker="dead-worker")
        assert late.lost == 3 and late.sent == 0
    for r in rows:
        row = reload(scoped, r)
        assert (row.status, row.attempts, row.claimed_by) == ("sent", 2, "worker-2")
    assert sorted(receiver.keys().values()) == [1, 1, 1]


def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_new_claim(tenant_a, receiver, hooked, make_contact,
                                                                     make_followup, scoped, settings):
    from followups.dispatch import followup_deliver

    settings.FOLLOWUP_LEASE_SECONDS = 60
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant))
    with time_machine.travel(timezone.now(), tick=False) as clock:
        followups_claim(batch_size=1, worker="slow-worker")
        slow_view = reload(scoped, followup)  # what the slow worker holds
        clock.move_to(timezone.now() + timedelta(seconds=61))
        followups_claim(batch_size=1, worker="worker-2")  # re-claimed: attempt 2
        with scoped(tenant):
            assert followup_deliver(followup=slow_view) == "lost"  # the slow worker's send is not recorded
    row = reload(scoped, followup)
    assert (row.status, row.attempts, row.claimed_by) == ("sending", 2, "worker-2")


def test_rows_whose_workers_keep_dying_end_up_failed(tenant_a, receiver, hooked, make_contact, make_followup,
                                                     scoped, settings):
    settings.FOLLOWUP_LEASE_SECONDS = 60
    settings.FOLLOWUP_MAX_ATTEMPTS = 2
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant))
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(2):
            followups_claim(batch_size=1, worker="crashing-worker")
            clock.move_to(timezone.now() + timedelta(seconds=61))
        assert dispatch().failed == 1
    row = reload(scoped, followup)
    assert row.status == "failed" and row.last_error.startswith("gave up after 2 attempts")
    assert receiver.deliveries == []


# --- AI-written text --------------------------------------------------------------------------------

@pytest.fixture
def conversation(tenant_a, scoped):
    from conversations.models import Conversation, Message

    def make(contact):
        with scoped(tenant_a):
            conv = Conversation.objects.create(tenant=tenant_a, channel="whatsapp", user_id="62811",
                                               contact=contact)
            Message.objects.create(tenant=tenant_a, conversation=conv, role="user",
                                   content="Kak, kue coklat ukuran 20cm ready besok?")
            Message.objects.create(tenant=tenant_a, conversation=conv, role="assistant",
                                   content="Ready kak, mau dipesan untuk jam berapa?")
        return conv

    return make


def test_an_empty_message_is_written_by_the_tenants_ai(tenant_a, receiver, hooked, make_contact, make_followup,
                                                       conversation, scoped, settings):
    fake = start_fake_gemini("Halo Kak Budi, kue coklat 20cm-nya jadi dipesan untuk besok? 😊")
    settings.LLM_PROVIDER, settings.GEMINI_API_KEY, settings.GEMINI_BASE_URL = "gemini", "test-key", fake.url
    try:
        tenant_a.sop = "Jangan menjanjikan diskon."
        tenant_a.save()
        tenant = hooked(tenant_a, receiver)
        contact = make_contact(tenant)
        followup = make_followup(tenant, contact, message="", channel="whatsapp", user_id="62811",
                                 conversation=conversation(contact))
        assert dispatch().sent == 1
    finally:
        stop_server(fake.server)
    assert receiver.deliveries[0].payload["message"] == fake.text
    row = reload(scoped, followup)
    assert row.text_sent == fake.text and row.text_origin == "ai:gemini/gemini-2.5-flash"
    [request] = fake.requests
    assert request["path"].endswith("models/gemini-2.5-flash:generateContent")
    system = " ".join(p["text"] for p in request["body"]["systemInstruction"]["parts"])
    assert "Kamu asisten Toko A." in system and "Jangan menjanjikan diskon." in system
    said = [p["text"] for c in request["body"]["contents"] for p in c["parts"]]
    assert said[0] == "Kak, kue coklat ukuran 20cm ready besok?"
    assert [c["role"] for c in request["body"]["contents"]] == ["user", "model", "user"]


def test_the_ai_text_is_fixed_at_the_first_attempt(tenant_a, receiver, hooked, make_contact, make_followup,
                                                   scoped, settings, fast_retries):
    fake = start_fake_gemini("Versi pertama.")
    settings.LLM_PROVIDER, settings.GEMINI_API_KEY, settings.GEMINI_BASE_URL = "gemini", "test-key", fake.url
    receiver.respond = lambda d, n: (503, {}, b"") if n == 1 else (200, {}, b"{}")
    try:
        tenant = hooked(tenant_a, receiver)
        followup = make_followup(tenant, make_contact(tenant), message="")
        with time_machine.travel(timezone.now(), tick=False) as clock:
            dispatch()
            fake.text = "Versi kedua."
            clock.move_to(reload(scoped, followup).next_attempt_at)
            assert dispatch().sent == 1
    finally:
        stop_server(fake.server)
    assert [d.payload["message"] for d in receiver.deliveries] == ["Versi pertama.", "Versi pertama."]
    assert len(fake.requests) == 1


def test_the_offline_provider_writes_a_polite_template(tenant_a, receiver, hooked, make_contact, make_followup,
                                                       scoped, settings):
    settings.LLM_PROVIDER = "offline"
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant), message="")
    assert dispatch().sent == 1
    row = reload(scoped, followup)
    assert row.text_origin == "ai:offline/offline-extractive"
    assert row.text_sent.startswith("Halo!") and "bantu" in row.text_sent  # Indonesian, the tenant's locale
    assert receiver.deliveries[0].payload["message"] == row.text_sent
