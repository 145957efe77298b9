from __future__ import annotations

import pytest

from followups.tests.support import start_receiver, stop_server


@pytest.fixture
def receiver():
    """A local webhook endpoint; point a tenant at it with ``hooked(tenant, receiver)``."""
    r = start_receiver(secret="")
    yield r
    stop_server(r.server)


@pytest.fixture
def hooked(settings):
    """Point a tenant's webhook at a local receiver, and open that one address and port
    (only it) to the outbound client, as an installation would with OUTBOUND_ALLOWED_PRIVATE_HOSTS."""
    def hook(tenant, receiver):
        from tenants.models import Tenant

        settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = [*settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS,
                                                   f"127.0.0.1:{receiver.server.port}"]
        Tenant.objects.filter(pk=tenant.pk).update(webhook_url=receiver.url)
        tenant.refresh_from_db()
        receiver.secret = tenant.webhook_secret
        return tenant

    return hook


@pytest.fixture
def make_contact(scoped):
    def make(tenant, name="Budi Santoso", phone="+6281234567890", **fields):
        from contacts.models import Contact

        with scoped(tenant):
            return Contact.objects.create(tenant=tenant, name=name, phone=phone, **fields)

    return make


@pytest.fixture
def make_followup(scoped):
    """A follow-up straight in the table (the API is tested on its own)."""

    def make(tenant, contact, **fields):
        from django.utils import timezone

        from followups.models import FollowUp

        now = timezone.now()
        values = {"channel": "webhook", "message": "Halo {name}, pesanan Anda siap.", "scheduled_at": now,
                  "next_attempt_at": now, **fields}
        with scoped(tenant):
            return FollowUp.objects.create(tenant=tenant, contact=contact, **values)

    return make


@pytest.fixture
def fast_retries(settings):
    settings.FOLLOWUP_RETRY_BASE_SECONDS = 30.0
    settings.FOLLOWUP_RETRY_MAX_SECONDS = 3600.0
    settings.FOLLOWUP_MAX_ATTEMPTS = 3
    settings.FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS = 2.0
    return settings
