"""Stuck inbound messages: a worker killed mid-message leaves its row ``processing``, a
lost task leaves it ``received``; ``channels.tasks.inbound_recover`` (cross-tenant, every
minute) re-queues it on the real broker, and the queued task, run as a worker runs it,
answers the customer — or, after too many attempts or a day, gives it up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from agent_project.schedules import SCHEDULES
from channels.base import InboundItem
from channels.inbound import _finish, inbound_record
from channels.models import InboundMessage
from channels.tasks import inbound_recover
from conversations.models import Conversation

pytestmark = pytest.mark.django_db

WA_ID = "6281234567890"
QUESTION = "Jam buka toko hari ini sampai jam berapa?"


@pytest.fixture(autouse=True)
def _recover_settings(settings):
    settings.CHANNELS_INBOUND_STALE_SECONDS = 300
    settings.CHANNELS_INBOUND_MAX_ATTEMPTS = 3


def stuck(tenant, *, status="processing", claimed_ago=None, received_ago=600, attempts=1, message_id="wamid.S1",
          wa_id=WA_ID):
    """A stored WhatsApp message left in ``status``: as the webhook stores it (nothing queued)."""
    now = timezone.now()
    row, created = inbound_record(tenant=tenant, channel="whatsapp", item=InboundItem(
        external_id=message_id, user_id=wa_id, name="Budi", kind="text", text=QUESTION,
        sent_at=now - timedelta(seconds=received_ago)))
    assert created
    with scopes_disabled():
        InboundMessage.objects.filter(pk=row.pk).update(
            status=status, attempts=attempts, received_at=now - timedelta(seconds=received_ago),
            claimed_at=None if claimed_ago is None else now - timedelta(seconds=claimed_ago))
    return row.pk


def row(pk):
    with scopes_disabled():
        return InboundMessage.objects.get(pk=pk)


@pytest.fixture
def recover(django_capture_on_commit_callbacks):
    """One scheduled tick; what it queues after commit is queued (the test runs in a transaction)."""
    def tick():
        with django_capture_on_commit_callbacks(execute=True):
            return inbound_recover()
    return tick


def test_a_stale_processing_row_is_requeued_and_answered(kb, wa_a, fake_wa, queue, recover):
    kb(wa_a)
    fake_wa.customer_wrote(WA_ID)
    pk = stuck(wa_a, claimed_ago=700)

    assert recover() == {"requeued": 1, "abandoned": 0, "skipped": 0}
    requeued = row(pk)
    assert requeued.status == "received" and requeued.attempts == 1
    assert queue.size() == 1

    assert queue.run_all() == [("channels.tasks.inbound_process", "replied")]
    done = row(pk)
    assert (done.status, done.outcome, done.attempts) == ("done", "replied", 2)
    assert done.claimed_at is not None and done.conversation_id is not None
    assert fake_wa.texts(WA_ID)


def test_a_fresh_processing_row_is_left_alone(wa_a, queue, recover):
    pk = stuck(wa_a, claimed_ago=60, received_ago=3600)  # arrived long ago, but a worker took it a minute ago
    fresh = stuck(wa_a, status="received", received_ago=30, attempts=0, message_id="wamid.S2")
    before = row(pk)

    assert recover() == {"requeued": 0, "abandoned": 0, "skipped": 0}
    after = row(pk)
    assert (after.status, after.attempts, after.claimed_at) == ("processing", 1, before.claimed_at)
    assert row(fresh).status == "received"
    assert queue.size() == 0


def test_a_worker_still_within_the_task_timeout_is_not_presumed_dead(wa_a, queue, recover, settings):
    # stale by CHANNELS_INBOUND_STALE_SECONDS (300 s), but django-q2 lets a task run 600 s:
    # the worker may still be answering, and a re-queue could answer the customer twice
    assert settings.Q_CLUSTER["timeout"] == 600
    pk = stuck(wa_a, claimed_ago=400)
    assert recover() == {"requeued": 0, "abandoned": 0, "skipped": 0}
    assert row(pk).status == "processing" and queue.size() == 0


def test_an_old_received_row_is_requeued(kb, wa_a, fake_wa, queue, recover):
    kb(wa_a)
    fake_wa.customer_wrote(WA_ID)
    pk = stuck(wa_a, status="received", received_ago=400, attempts=0)  # its task was lost

    assert recover()["requeued"] == 1
    assert queue.run_all() == [("channels.tasks.inbound_process", "replied")]
    assert (row(pk).status, row(pk).attempts) == ("done", 1)


def test_max_attempts_is_abandoned(wa_a, fake_wa, queue, recover):
    pk = stuck(wa_a, claimed_ago=700, attempts=3)

    assert recover() == {"requeued": 0, "abandoned": 1, "skipped": 0}
    failed = row(pk)
    assert (failed.status, failed.outcome, failed.attempts) == ("failed", "abandoned", 3)
    assert "3 attempts" in failed.error and failed.processed_at is not None
    assert queue.size() == 0 and fake_wa.sent == []


def test_older_than_a_day_is_abandoned_not_answered(wa_a, fake_wa, queue, recover):
    processing = stuck(wa_a, claimed_ago=700, received_ago=25 * 3600)
    received = stuck(wa_a, status="received", received_ago=25 * 3600, attempts=0, message_id="wamid.S2")

    assert recover() == {"requeued": 0, "abandoned": 2, "skipped": 0}
    for pk in (processing, received):
        failed = row(pk)
        assert (failed.status, failed.outcome) == ("failed", "abandoned")
        assert "24 hours" in failed.error
    assert queue.size() == 0 and fake_wa.sent == []


def test_rows_of_two_tenants_are_both_recovered_each_in_its_tenant(kb, wa_a, wa_b, fake_wa, queue, recover):
    from channels.tests.conftest import WA_NUMBER_A, WA_NUMBER_B

    kb(wa_a)
    kb(wa_b)
    fake_wa.customer_wrote(WA_ID)
    fake_wa.customer_wrote("6289999999999")
    pk_a = stuck(wa_a, claimed_ago=700)
    pk_b = stuck(wa_b, status="received", received_ago=400, attempts=0, message_id="wamid.S1", wa_id="6289999999999")

    assert recover()["requeued"] == 2
    assert sorted(r for _, r in queue.run_all()) == ["replied", "replied"]
    a, b = row(pk_a), row(pk_b)
    assert (a.tenant_id, a.status, b.tenant_id, b.status) == (wa_a.pk, "done", wa_b.pk, "done")
    with scopes_disabled():
        assert Conversation.objects.get(pk=a.conversation_id).tenant_id == wa_a.pk
        assert Conversation.objects.get(pk=b.conversation_id).tenant_id == wa_b.pk
    assert {m["phone_number_id"] for m in fake_wa.sent if m["to"] == WA_ID} == {WA_NUMBER_A}
    assert {m["phone_number_id"] for m in fake_wa.sent if m["to"] == "6289999999999"} == {WA_NUMBER_B}


@pytest.mark.parametrize("status", ["processing", "received"])
def test_running_the_recoverer_twice_enqueues_once(wa_a, queue, recover, status):
    stuck(wa_a, status=status, claimed_ago=700 if status == "processing" else None, received_ago=400)

    assert recover()["requeued"] == 1
    assert recover()["requeued"] == 0  # the re-queue restarted the clock
    assert queue.size() == 1


def test_a_row_changed_after_it_was_read_is_skipped(wa_a, queue, recover, monkeypatch):
    """Another recoverer (or the worker finishing late) got there between the read and the update."""
    from channels import inbound

    pk = stuck(wa_a, claimed_ago=700)
    real_filter = InboundMessage.objects.filter

    def finish_first(*args, **kwargs):
        if kwargs.get("pk") == pk:  # the conditional update: the late worker finishes just before it
            with scopes_disabled():
                InboundMessage.objects.filter(id=pk).update(status="done", outcome="replied")
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(inbound.InboundMessage.objects, "filter", finish_first)
    assert recover() == {"requeued": 0, "abandoned": 0, "skipped": 1}
    monkeypatch.undo()
    assert row(pk).status == "done" and queue.size() == 0


def test_a_late_worker_finishing_after_the_requeue_makes_the_retry_a_no_op(wa_a, queue, recover):
    pk = stuck(wa_a, claimed_ago=700)
    assert recover()["requeued"] == 1
    with scopes_disabled():
        _finish(row(pk), outcome="replied")  # the worker we took for dead was only slow
    assert queue.run_all() == [("channels.tasks.inbound_process", "duplicate")]
    assert row(pk).status == "done"


def test_the_recoverer_is_scheduled_every_minute():
    [spec] = [s for s in SCHEDULES if s["func"] == "channels.tasks.inbound_recover"]
    assert (spec["schedule_type"], spec["minutes"]) == ("I", 1)
