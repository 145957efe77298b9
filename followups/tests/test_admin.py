from __future__ import annotations

import pytest

from followups.models import FollowUp

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", "op@example.com", "pw-operator-123")
    client.force_login(user)
    return client


def test_the_queue_lists_every_tenant_with_filters_and_the_last_error(operator_client, tenant_a, tenant_b,
                                                                      make_contact, make_followup):
    make_followup(tenant_a, make_contact(tenant_a), status="failed", last_error="webhook_http_410: gone")
    make_followup(tenant_b, make_contact(tenant_b, name="Sari"))
    page = operator_client.get("/admin/followups/followup/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "webhook_http_410: gone" in html and "Sari" in html and "Budi Santoso" in html
    failed = operator_client.get("/admin/followups/followup/?status__exact=failed").content.decode()
    assert "webhook_http_410" in failed and "Sari" not in failed


def test_cancel_and_retry_actions_use_the_services(operator_client, tenant_a, make_contact, make_followup, scoped):
    contact = make_contact(tenant_a)
    pending = make_followup(tenant_a, contact)
    failed = make_followup(tenant_a, contact, status="failed", attempts=6, last_error="gave up")
    sent = make_followup(tenant_a, contact, status="sent")
    url = "/admin/followups/followup/"
    r = operator_client.post(url, {"action": "cancel", "_selected_action": [pending.pk, sent.pk]}, follow=True)
    assert r.status_code == 200 and "already sent" in r.content.decode()
    operator_client.post(url, {"action": "retry", "_selected_action": [failed.pk]})
    with scoped(tenant_a):
        assert FollowUp.objects.get(pk=pending.pk).status == "cancelled"
        assert FollowUp.objects.get(pk=sent.pk).status == "sent"
        again = FollowUp.objects.get(pk=failed.pk)
    assert (again.status, again.attempts, again.last_error) == ("pending", 0, "")


def test_the_detail_page_shows_the_delivery_fields(operator_client, tenant_a, make_contact, make_followup):
    f = make_followup(tenant_a, make_contact(tenant_a), last_error="webhook_timeout: ReadTimeout")
    page = operator_client.get(f"/admin/followups/followup/{f.pk}/change/")
    assert page.status_code == 200 and "webhook_timeout: ReadTimeout" in page.content.decode()
