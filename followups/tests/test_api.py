"""The follow-up routes: scheduling validation, the queue, filters, cancel/retry, tenancy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from conftest import assert_error
from contacts.models import Contact, ContactIdentity
from followups.models import FollowUp

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=dt_timezone.utc)  # a Wednesday, 10:00 in Jakarta
JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _count(scoped, tenant, **filters) -> int:
    with scoped(tenant):
        return FollowUp.objects.filter(**filters).count()


def test_schedule_by_contact_with_a_delay(client_a, tenant_a, make_contact, frozen, scoped):
    contact = make_contact(tenant_a)
    r = client_a.post("/followup/schedule", {"contact_id": contact.pk, "message": "Halo {first_name}!",
                                             "delay_minutes": 90}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "pending" and body["contact_id"] == contact.pk and body["attempts"] == 0
    assert datetime.fromisoformat(body["scheduled_at"]) == NOW + timedelta(minutes=90)
    assert datetime.fromisoformat(body["next_attempt_at"]) == NOW + timedelta(minutes=90)
    assert body["channel"] == "webhook" and body["idempotency_key"].startswith("fu_")
    assert body["created_by"].startswith("key:")
    with scoped(tenant_a):
        assert FollowUp.objects.get(pk=body["id"]).message == "Halo {first_name}!"


def test_schedule_by_user_id_and_channel_makes_the_contact_once(client_a, tenant_a, scoped, frozen):
    payload = {"user_id": "6281111", "channel": "WhatsApp", "message": "Halo", "scheduled_at": "2026-12-01T10:00:00"}
    first = client_a.post("/followup/schedule", payload, format="json")
    second = client_a.post("/followup/schedule/", payload, format="json")  # trailing slash answers too
    assert first.status_code == second.status_code == 201
    assert first.json()["contact_id"] == second.json()["contact_id"]
    assert first.json()["channel"] == "whatsapp" and first.json()["user_id"] == "6281111"
    # a wall-clock time is the tenant's own (Asia/Jakarta)
    assert datetime.fromisoformat(first.json()["scheduled_at"]) == datetime(2026, 12, 1, 10, 0, tzinfo=JAKARTA)
    with scoped(tenant_a):
        assert ContactIdentity.objects.filter(channel="whatsapp", external_id="6281111").count() == 1


def test_contact_id_takes_the_channel_and_user_id_of_its_identity(client_a, tenant_a, make_contact, scoped):
    contact = make_contact(tenant_a)
    with scoped(tenant_a):
        ContactIdentity.objects.create(tenant=tenant_a, contact=contact, channel="telegram", external_id="tg-77")
    body = client_a.post("/followup/schedule", {"contact_id": contact.pk, "message": "Hi"}, format="json").json()
    assert (body["channel"], body["user_id"]) == ("telegram", "tg-77")


def test_a_past_time_means_as_soon_as_possible(client_a, tenant_a, make_contact, frozen):
    contact = make_contact(tenant_a)
    r = client_a.post("/followup/schedule", {"contact_id": contact.pk, "message": "Hi",
                                             "scheduled_at": "2020-01-01T00:00:00Z"}, format="json")
    assert r.status_code == 201
    assert datetime.fromisoformat(r.json()["next_attempt_at"]) == NOW


def test_neither_time_nor_delay_means_now(client_a, tenant_a, make_contact, frozen):
    contact = make_contact(tenant_a)
    body = client_a.post("/followup/schedule", {"contact_id": contact.pk}, format="json").json()
    assert datetime.fromisoformat(body["next_attempt_at"]) == NOW and body["message"] == ""


def test_respect_working_hours_waits_for_the_next_opening(client_a, make_tenant, make_contact, frozen):
    tenant = make_tenant("toko-jam", working_hours={"mon": [["09:00", "17:00"]], "thu": [["09:00", "17:00"]]})
    contact = make_contact(tenant)
    client = client_a.__class__()
    client.credentials(HTTP_X_API_KEY=tenant.test_key)
    r = client.post("/followup/schedule", {"contact_id": contact.pk, "message": "Hi",
                                           "respect_working_hours": True}, format="json")
    assert r.status_code == 201
    # Wednesday 10:00 in Jakarta is closed; Thursday 09:00 local is the next opening
    assert datetime.fromisoformat(r.json()["next_attempt_at"]) == datetime(2026, 11, 26, 9, 0, tzinfo=JAKARTA)
    assert datetime.fromisoformat(r.json()["scheduled_at"]) == NOW


def test_a_repeated_idempotency_key_returns_the_first_followup(client_a, tenant_a, make_contact, scoped):
    contact = make_contact(tenant_a)
    payload = {"contact_id": contact.pk, "message": "Hi", "idempotency_key": "order-12:reminder"}
    first = client_a.post("/followup/schedule", payload, format="json")
    again = client_a.post("/followup/schedule", {**payload, "message": "different"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["message"] == "Hi"
    assert _count(scoped, tenant_a) == 1


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"message": "Hi"}, 400, "recipient_required"),
        ({"user_id": "u1", "message": "Hi"}, 400, "channel_required"),
        ({"contact_id": "CONTACT", "user_id": "u1", "channel": "web"}, 400, "recipient_ambiguous"),
        ({"contact_id": 999999}, 404, "contact_not_found"),
        ({"contact_id": "CONTACT", "conversation_id": 999999}, 404, "conversation_not_found"),
        ({"contact_id": "CONTACT", "scheduled_at": "2030-01-01T00:00:00Z", "delay_minutes": 5}, 400,
         "schedule_ambiguous"),
        ({"contact_id": "CONTACT", "scheduled_at": "tomorrow-ish"}, 400, "validation_error"),
        ({"contact_id": "CONTACT", "delay_minutes": -5}, 400, "validation_error"),
        ({"contact_id": "CONTACT", "delay_minutes": "soon"}, 400, "validation_error"),
        ({"contact_id": "CONTACT", "scheduled_at": "2099-01-01T00:00:00Z"}, 400, "schedule_too_far"),
        ({"contact_id": "CONTACT", "message": "Halo {nama}"}, 400, "unknown_template_variable"),
        ({"contact_id": "CONTACT", "message": "Halo {0}"}, 400, "invalid_template"),
        ({"contact_id": "CONTACT", "message": "Hi", "variables": {"x": {"y": 1}}}, 400, "invalid_variables"),
        ({"contact_id": "CONTACT", "message": "x" * 4001}, 400, "validation_error"),
        ({"contact_id": "CONTACT", "channel": "what's app"}, 400, "validation_error"),
        ({"contact_id": "CONTACT", "idempotency_key": "has spaces"}, 400, "invalid_idempotency_key"),
        ({"user_id": "new-user", "channel": "web", "message": "{unknown}"}, 400, "unknown_template_variable"),
    ],
)
def test_bad_schedule_requests_get_clear_errors_and_store_nothing(client_a, tenant_a, make_contact, scoped,
                                                                   payload, status, code):
    contact = make_contact(tenant_a)
    payload = {k: contact.pk if v == "CONTACT" else v for k, v in payload.items()}
    with scoped(tenant_a):
        contacts_before = Contact.objects.count()
    r = client_a.post("/followup/schedule", payload, format="json")
    assert_error(r, status, code)
    assert _count(scoped, tenant_a) == 0
    with scoped(tenant_a):
        assert Contact.objects.count() == contacts_before  # a refused request made no contact either


def test_an_opted_out_contact_is_refused(client_a, tenant_a, make_contact, scoped):
    contact = make_contact(tenant_a, opted_out=True)
    with scoped(tenant_a):
        ContactIdentity.objects.create(tenant=tenant_a, contact=contact, channel="whatsapp", external_id="62899")
    for payload in ({"contact_id": contact.pk}, {"user_id": "62899", "channel": "whatsapp"}):
        err = assert_error(client_a.post("/followup/schedule", payload, format="json"), 409, "contact_opted_out")
        assert err["details"] == {"contact_id": contact.pk}
    assert _count(scoped, tenant_a) == 0


def test_pending_is_the_queue_soonest_first(client_a, tenant_a, make_contact, make_followup):
    contact = make_contact(tenant_a)
    now = timezone.now()
    late = make_followup(tenant_a, contact, next_attempt_at=now + timedelta(hours=3))
    soon = make_followup(tenant_a, contact, next_attempt_at=now + timedelta(minutes=5))
    make_followup(tenant_a, contact, status="sent", next_attempt_at=now - timedelta(hours=1))
    make_followup(tenant_a, contact, status="cancelled", next_attempt_at=now)
    body = client_a.get("/followup/pending").json()
    assert [f["id"] for f in body["results"]] == [soon.pk, late.pk]
    assert body["count"] == 2


def test_list_filters_by_status_contact_and_dates(client_a, tenant_a, make_contact, make_followup):
    budi, sari = make_contact(tenant_a), make_contact(tenant_a, name="Sari", phone="+6281300000000")
    day = datetime(2030, 3, 10, 12, 0, tzinfo=JAKARTA)
    a = make_followup(tenant_a, budi, scheduled_at=day, status="sent")
    b = make_followup(tenant_a, budi, scheduled_at=day + timedelta(days=1))
    c = make_followup(tenant_a, sari, scheduled_at=day + timedelta(days=2), status="failed")

    def ids(query):
        r = client_a.get("/followup" + query)
        assert r.status_code == 200, r.content
        return {f["id"] for f in r.json()["results"]}

    assert ids("") == {a.pk, b.pk, c.pk}
    assert ids("?status=sent") == {a.pk}
    assert ids("?status=failed") == {c.pk}
    assert ids("?status=cancelled") == set()
    assert ids(f"?contact_id={budi.pk}") == {a.pk, b.pk}
    assert ids("?from=2030-03-11") == {b.pk, c.pk}
    assert ids("?to=2030-03-11") == {a.pk, b.pk}  # a date includes that whole local day
    assert ids("?from=2030-03-11T00:00:00%2B07:00&to=2030-03-12T00:00:00%2B07:00") == {b.pk}
    assert_error(client_a.get("/followup?status=done"), 400, "invalid_status")
    assert_error(client_a.get("/followup?from=yesterday"), 400, "invalid_date")
    assert_error(client_a.get("/followup?contact_id=abc"), 400, "invalid_contact_id")


def test_detail(client_a, tenant_a, make_contact, make_followup):
    f = make_followup(tenant_a, make_contact(tenant_a))
    body = client_a.get(f"/followup/{f.pk}").json()
    assert body["id"] == f.pk and body["contact_name"] == "Budi Santoso"
    assert_error(client_a.get("/followup/999999"), 404, "followup_not_found")


def test_cancel_a_pending_followup(client_a, tenant_a, make_contact, make_followup, scoped):
    f = make_followup(tenant_a, make_contact(tenant_a))
    r = client_a.post(f"/followup/{f.pk}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["cancelled_at"]
    assert client_a.post(f"/followup/{f.pk}/cancel/").json()["status"] == "cancelled"  # twice is harmless
    with scoped(tenant_a):
        assert FollowUp.objects.get(pk=f.pk).status == "cancelled"


@pytest.mark.parametrize("status, code", [("sent", "followup_already_sent"), ("sending", "followup_in_flight"),
                                          ("failed", "followup_not_cancellable")])
def test_cancel_refuses_what_is_not_pending(client_a, tenant_a, make_contact, make_followup, scoped, status, code):
    f = make_followup(tenant_a, make_contact(tenant_a), status=status)
    assert_error(client_a.post(f"/followup/{f.pk}/cancel"), 409, code)
    with scoped(tenant_a):
        assert FollowUp.objects.get(pk=f.pk).status == status


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_retry_puts_a_finished_followup_back_in_the_queue(client_a, tenant_a, make_contact, make_followup,
                                                          status, frozen):
    f = make_followup(tenant_a, make_contact(tenant_a), status=status, attempts=3, last_error="webhook_http_503",
                      next_attempt_at=NOW - timedelta(days=1))
    body = client_a.post(f"/followup/{f.pk}/retry").json()
    assert body["status"] == "pending" and body["attempts"] == 0 and body["last_error"] == ""
    assert datetime.fromisoformat(body["next_attempt_at"]) == NOW
    assert body["idempotency_key"] == f.idempotency_key


def test_retry_of_a_pending_followup_sends_it_now(client_a, tenant_a, make_contact, make_followup, frozen):
    f = make_followup(tenant_a, make_contact(tenant_a), attempts=1, next_attempt_at=NOW + timedelta(minutes=30))
    body = client_a.post(f"/followup/{f.pk}/retry").json()
    assert datetime.fromisoformat(body["next_attempt_at"]) == NOW and body["attempts"] == 1


@pytest.mark.parametrize("status, code", [("sent", "followup_already_sent"), ("sending", "followup_in_flight")])
def test_retry_refuses_sent_and_in_flight(client_a, tenant_a, make_contact, make_followup, status, code):
    f = make_followup(tenant_a, make_contact(tenant_a), status=status)
    assert_error(client_a.post(f"/followup/{f.pk}/retry"), 409, code)


def test_global_key_names_its_tenant(global_client, tenant_a, make_contact):
    contact = make_contact(tenant_a)
    r = global_client.post("/followup/schedule", {"contact_id": contact.pk, "tenant_id": tenant_a.pk}, format="json")
    assert r.status_code == 201 and r.json()["created_by"] == "global"
    assert_error(global_client.get("/followup/pending"), 400, "tenant_required")


def test_anonymous_is_refused(anon_client):
    assert_error(anon_client.get("/followup/pending"), 401)


# --- tenancy: every route, tenant B's key on tenant A's things ------------------------------

ROUTES = [
    ("get", "/followup/{pk}"),
    ("post", "/followup/{pk}/cancel"),
    ("post", "/followup/{pk}/retry"),
]


@pytest.mark.parametrize("method, path", ROUTES)
def test_another_tenants_followup_is_not_found(client_b, tenant_a, tenant_b, make_contact, make_followup, scoped,
                                               method, path):
    f = make_followup(tenant_a, make_contact(tenant_a), status="failed")
    assert_error(getattr(client_b, method)(path.format(pk=f.pk)), 404, "followup_not_found")
    with scoped(tenant_a):
        assert FollowUp.objects.get(pk=f.pk).status == "failed"


def test_another_tenants_followups_never_list(client_b, tenant_a, tenant_b, make_contact, make_followup):
    make_followup(tenant_a, make_contact(tenant_a))
    assert client_b.get("/followup/pending").json()["count"] == 0
    assert client_b.get("/followup").json()["count"] == 0


def test_another_tenants_contact_cannot_be_scheduled(client_b, tenant_a, tenant_b, make_contact, scoped):
    contact = make_contact(tenant_a)
    assert_error(client_b.post("/followup/schedule", {"contact_id": contact.pk}, format="json"), 404,
                 "contact_not_found")
    assert _count(scoped, tenant_a) == 0 and _count(scoped, tenant_b) == 0


@pytest.mark.parametrize("method, path", ROUTES + [("get", "/followup"), ("get", "/followup/pending"),
                                                   ("post", "/followup/schedule")])
def test_naming_another_tenant_is_forbidden(api_client, tenant_a, tenant_b, make_contact, make_followup,
                                            method, path):
    f = make_followup(tenant_a, make_contact(tenant_a))
    client = api_client(tenant_b.test_key, tenant_a.pk)
    assert_error(getattr(client, method)(path.format(pk=f.pk)), 403,
                 "tenant_mismatch")


def test_schema_documents_the_routes(client_a):
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for route in ("/followup/schedule", "/followup/pending", "/followup", "/followup/{id}",
                  "/followup/{id}/cancel", "/followup/{id}/retry"):
        assert route in paths, (route, [p for p in paths if "followup" in p])
    schedule = paths["/followup/schedule"]["post"]
    assert set(schedule["responses"]) >= {"200", "201"}


@pytest.mark.django_db(transaction=True)
def test_the_same_idempotency_key_at_the_same_moment_makes_one_followup(tenant_a, make_contact, scoped):
    import threading

    from django.db import connection

    from followups.services import followup_schedule

    contact = make_contact(tenant_a)
    barrier, results, errors = threading.Barrier(6), [], []

    def schedule():
        try:
            barrier.wait()
            results.append(followup_schedule(tenant=tenant_a, contact_id=contact.pk, message="Hi",
                                             idempotency_key="same-moment"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=schedule) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({f.pk for f, _ in results}) == 1 and sum(created for _, created in results) == 1
    assert _count(scoped, tenant_a) == 1
