"""What the knowledge commands share: ``--tenant SLUG`` or ``--all-tenants``."""

from __future__ import annotations

from django.core.management.base import CommandError

from tenants.models import Tenant


def add_tenant_arguments(parser) -> None:
    parser.add_argument("--tenant", help="The tenant's slug.")
    parser.add_argument("--all-tenants", action="store_true", help="Every tenant (cross-tenant job).")
    parser.add_argument("--no-progress", action="store_true")


def tenants_from_options(options) -> list[Tenant]:
    """The one tenant named, or every tenant in slug order; a clear error otherwise."""
    if bool(options["tenant"]) == bool(options["all_tenants"]):
        raise CommandError("Name exactly one of --tenant SLUG or --all-tenants.")
    if not options["tenant"]:
        return list(Tenant.objects.order_by("pk"))
    tenant = Tenant.objects.filter(pk=options["tenant"]).first()
    if tenant is None:
        raise CommandError(f"No tenant '{options['tenant']}'.")
    return [tenant]
