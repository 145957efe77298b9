"""Secrets are never shown to staff who may only view (masked), nor held in the tenant form."""
from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from conftest import staff_client

from channels.tests.conftest import (APP_SECRET_A, TG_SECRET_A, TG_TOKEN_A, WA_TOKEN_A,  # noqa: F401
                                     _channel_settings, fake_tg, fake_wa, tg_a, wa_a)
from tools.tests.conftest import biteship_a  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_view_only_user_sees_whatsapp_secrets_masked(wa_a):
    from channels.models import ChannelConfig

    with scopes_disabled():
        config = ChannelConfig.objects.get(tenant=wa_a)
    client = staff_client("channels.view_channelconfig")
    page = client.get(f"/admin/channels/channelconfig/{config.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert WA_TOKEN_A not in html
    assert APP_SECRET_A not in html
    assert "verify-me-a" not in html


def test_a_view_only_user_sees_telegram_secrets_masked(tg_a):
    from channels.models import ChannelConfig

    with scopes_disabled():
        config = ChannelConfig.objects.get(tenant=tg_a)
    client = staff_client("channels.view_channelconfig")
    html = client.get(f"/admin/channels/channelconfig/{config.pk}/change/").content.decode()
    assert TG_TOKEN_A not in html
    assert TG_SECRET_A not in html


def test_a_view_only_user_sees_the_courier_key_masked(biteship_a):
    client = staff_client("tools.view_shippingconfig")
    page = client.get(f"/admin/tools/shippingconfig/{biteship_a.pk}/change/")
    assert page.status_code == 200
    assert "biteship_test_key_A1b2C3d4" not in page.content.decode()


def test_the_tenant_page_hides_the_webhook_secret_from_a_viewer(tenant_a):
    client = staff_client("tenants.view_tenant")
    page = client.get(f"/admin/tenants/tenant/{tenant_a.pk}/change/")
    assert page.status_code == 200
    assert tenant_a.webhook_secret not in page.content.decode()


def test_the_tenant_form_never_holds_the_webhook_secret(operator, tenant_a):
    # The API treats webhook_secret as write-only (tenants/api.py: write_only + a masked hint);
    # the admin form renders the whole secret as the input's value.
    page = operator.get(f"/admin/tenants/tenant/{tenant_a.pk}/change/")
    assert page.status_code == 200
    assert tenant_a.webhook_secret not in page.content.decode()


def test_a_view_only_user_cannot_read_the_webhook_secret_through_a_changelist_filter(tenant_a):
    """A filter on a secret would tell a right guess from a wrong one (one row or none): character by
    character, the whole secret."""
    client = staff_client("tenants.view_tenant")
    secret = tenant_a.webhook_secret
    right = client.get("/admin/tenants/tenant/", {"webhook_secret__startswith": secret[:12]})
    wrong_char = "A" if secret[11] != "A" else "B"
    wrong = client.get("/admin/tenants/tenant/", {"webhook_secret__startswith": secret[:11] + wrong_char})
    if right.status_code == 200 and wrong.status_code == 200:
        assert right.context["cl"].result_count == wrong.context["cl"].result_count, (
            "the result count tells whether a guessed prefix of the secret is right")
    else:
        assert right.status_code == wrong.status_code


def test_the_whole_secret_is_recovered_with_exact_lookups(tenant_a):
    client = staff_client("tenants.view_tenant")
    found = client.get("/admin/tenants/tenant/", {"webhook_secret": tenant_a.webhook_secret})
    assert found.status_code != 200 or found.context["cl"].result_count == 0
