"""What the contact services share: the tenant's phone region, WhatsApp's channel name, and how
often a write retries after losing a race."""

from __future__ import annotations

from contacts.normalize import region_for_locale
from tenants.models import Tenant

WHATSAPP = "whatsapp"  # channels.base.WHATSAPP: its user ids are phone numbers

RETRIES = 5  # a conflict can only be lost to a row that then exists, so a few tries always suffice


def tenant_phone_region(tenant: Tenant) -> str:
    return region_for_locale(tenant.locale)
