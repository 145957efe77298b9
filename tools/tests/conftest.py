from __future__ import annotations

import pytest

from conversations.tests.conftest import fake_gemini, fake_openai, kb_a  # noqa: F401 (fixtures)
from tools.tests.fakes import FakeHTTP


@pytest.fixture(autouse=True)
def _tool_settings(settings):
    settings.EMBEDDING_PROVIDER = "fake"
    settings.LLM_PROVIDER = "offline"
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_RETRY_INITIAL_DELAY = 0.01
    settings.LLM_RETRY_MAX_DELAY = 0.05
    settings.LLM_TIMEOUT_SECONDS = 5.0
    settings.TOOLS_CALL_TIMEOUT_SECONDS = 2.0
    settings.TOOLS_MAX_RESPONSE_BYTES = 64 * 1024
    settings.TOOLS_MAX_ROUNDS = 3


@pytest.fixture
def courier_api(settings):
    """A fake Biteship; the tenant's ShippingConfig must choose provider=biteship."""
    server = FakeHTTP().start()
    settings.BITESHIP_BASE_URL = server.url
    yield server
    server.stop()


@pytest.fixture
def shop_api():
    server = FakeHTTP().start()
    yield server
    server.stop()


@pytest.fixture
def biteship_a(tenant_a, scoped):
    from tools.models import ShippingConfig

    with scoped(tenant_a):
        return ShippingConfig.objects.create(tenant=tenant_a, provider="biteship", api_key="biteship_test_key_A1b2C3d4",
                                             default_courier="jne")


@pytest.fixture
def mock_shipping_a(tenant_a, scoped):
    from tools.models import ShippingConfig

    with scoped(tenant_a):
        return ShippingConfig.objects.create(tenant=tenant_a, provider="mock")


ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string", "description": "Nomor pesanan"}},
                "required": ["order_id"]}


@pytest.fixture
def order_tool(scoped):
    """Make tenant ``tenant``'s order-status tool pointing at ``server``."""
    from tools.models import TenantTool

    def make(tenant, server, *, allow_private=True, name="cek_pesanan", path="/api/orders/{order_id}", **extra):
        with scoped(tenant):
            return TenantTool.objects.create(
                tenant=tenant, name=name, description="Cek status pesanan toko berdasarkan nomor pesanan.",
                parameters=ORDER_SCHEMA, method="GET", url_template=server.url + path,
                headers='{"Authorization": "Bearer shop-secret-token-123456"}',
                response_mapping={"status": "data.status", "kurir": "data.shipping.courier",
                                  "resi": "data.shipping.waybill", "perkiraan_tiba": "data.shipping.eta"},
                intent="order_status", allow_private_network=allow_private, **extra)
    return make
