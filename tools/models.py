from __future__ import annotations

import json

from django.core.validators import RegexValidator
from django.db import models
from django.dispatch import Signal
from django_scopes import ScopedManager

from tenants.models import Tenant, TenantOwned
from agent_project.lib.encryption import EncryptedTextField

#: Sent with ``tenant_ids`` after a bulk ``update()`` of tools or shipping configs, which sends no
#: model signal. ``tools.apps`` connects it, with post_save and post_delete, to
#: ``tools.registry.tenant_config_changed``: the models do not import the registry that reads them.
config_updated = Signal()


class ToolConfigQuerySet(models.QuerySet):
    """Bulk updates (the admin's enable/disable actions) send no model signals: they send ``config_updated``."""

    def update(self, **kwargs):
        tenants = set(self.values_list("tenant_id", flat=True))
        count = super().update(**kwargs)
        config_updated.send(sender=self.model, tenant_ids=tenants)
        return count


ToolConfigManager = models.Manager.from_queryset(ToolConfigQuerySet)

TOOL_NAME = RegexValidator(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$",
                           "Letters, digits and underscores, starting with a letter (function-call names).")


class TenantTool(TenantOwned):
    """An HTTP endpoint of the shop's own systems that the agent may call, e.g. an
    order-status look-up. Only the URL template's host is ever reached (tools.safehttp)."""

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"

    class Intent(models.TextChoices):
        NONE = "", "none (the model decides)"
        ORDER_STATUS = "order_status", "order status (the offline provider calls it for 'status pesanan #123')"
        TRACK_SHIPMENT = "track_shipment", "shipment tracking"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=64, validators=[TOOL_NAME])
    description = models.TextField(help_text="What the tool does and when to use it: the model reads this.")
    parameters = models.JSONField(default=dict, blank=True,
                                  help_text='JSON schema of the arguments, e.g. {"type": "object", "properties": '
                                            '{"order_id": {"type": "string"}}, "required": ["order_id"]}')
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GET)
    url_template = models.CharField(max_length=1000, help_text="e.g. https://shop.example.com/api/orders/{order_id}; "
                                                               "placeholders fill the path and query only.")
    headers = EncryptedTextField(blank=True, default="",
                                 help_text="A JSON object of request headers (encrypted at rest; shown masked).")
    response_mapping = models.JSONField(default=dict, blank=True,
                                        help_text='Fields to give the model: {"status": "data.status"}; '
                                                  "empty gives the whole JSON answer.")
    intent = models.CharField(max_length=32, choices=Intent.choices, default="", blank=True)
    enabled = models.BooleanField(default=True)
    allow_private_network = models.BooleanField(
        default=False, help_text="Allow loopback/private/link-local addresses (only for a shop system on the "
                                 "same private network; never for a public host).")
    timeout_seconds = models.FloatField(default=8.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(ToolConfigManager, tenant="tenant")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tenant_tool_unique_name")]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.name}"

    def header_dict(self) -> dict:
        try:
            value = json.loads(self.headers or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class ShippingConfig(TenantOwned):
    """Which tracking provider a tenant's ``track_shipment`` tool uses, with its API key."""

    class Provider(models.TextChoices):
        MOCK = "mock", "mock (deterministic, for demos)"
        BITESHIP = "biteship", "Biteship"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="shipping_config")
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.MOCK)
    api_key = EncryptedTextField(blank=True, default="", help_text="The aggregator's API key (encrypted at rest).")
    default_courier = models.CharField(max_length=32, blank=True,
                                       help_text="Courier code used when the customer names none (e.g. jne).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(ToolConfigManager, tenant="tenant")

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.provider}"
