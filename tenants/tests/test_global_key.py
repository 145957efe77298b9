"""The global key (settings.API_KEY) acts for any tenant but must name it; tenant routes
that don't carry the tenant in the path need X-Tenant-Id. Exercised on a scoped test view."""

import pytest
from django.urls import path
from rest_framework.response import Response

from conftest import GLOBAL_KEY, assert_error
from tenants.models import ApiKey
from tenants.viewsets import TenantAPIView, TenantViewSet


class WhoAmI(TenantAPIView):
    def get(self, request):
        # a scoped query: only this tenant's keys are visible, with no explicit filter
        return Response({"tenant": self.tenant.id, "keys": sorted(ApiKey.objects.values_list("prefix", flat=True))})

    def post(self, request):
        return Response({"tenant": self.tenant.id})


urlpatterns = [path("whoami", WhoAmI.as_view())]


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = __name__


def test_global_key_without_tenant_is_refused(tenant_a, global_client):
    assert_error(global_client.get("/whoami"), 400, "tenant_required")


def test_global_key_with_x_tenant_id_acts_for_that_tenant(tenant_a, tenant_b, api_client):
    body = api_client(GLOBAL_KEY, "tenant-a").get("/whoami").json()
    assert body == {"tenant": "tenant-a", "keys": [tenant_a.test_key[:16]]}


def test_global_key_with_body_tenant_id(tenant_a, global_client):
    assert global_client.post("/whoami", {"tenant_id": "tenant-a"}, format="json").json() == {"tenant": "tenant-a"}


def test_global_key_naming_an_unknown_tenant_is_404(global_client, api_client):
    assert_error(api_client(GLOBAL_KEY, "ghost").get("/whoami"), 404, "tenant_not_found")


def test_tenant_key_sees_only_its_own_rows(tenant_a, tenant_b, client_b):
    assert client_b.get("/whoami").json() == {"tenant": "tenant-b", "keys": [tenant_b.test_key[:16]]}


def test_tenant_key_naming_another_tenant_in_the_body_is_refused(tenant_a, tenant_b, client_b):
    assert_error(client_b.post("/whoami", {"tenant_id": "tenant-a"}, format="json"), 403, "tenant_mismatch")


def test_wrong_global_key_is_refused(tenant_a, api_client):
    assert_error(api_client(GLOBAL_KEY + "x", "tenant-a").get("/whoami"), 401, "invalid_api_key")


def test_global_key_disabled_when_unset(tenant_a, api_client, settings):
    settings.API_KEY = ""
    assert_error(api_client(GLOBAL_KEY, "tenant-a").get("/whoami"), 401, "invalid_api_key")


def test_a_viewset_may_not_override_get_queryset():
    with pytest.raises(TypeError, match="scoped_queryset"):
        type("Leaky", (TenantViewSet,), {"get_queryset": lambda self: ApiKey.objects.all()})
