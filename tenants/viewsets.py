"""Base classes every tenant API view stands on.

The request's tenant comes from the API key (``tenants.auth``), is resolved once
in ``initial()`` and a django-scopes scope stays open until the response is
finalised, so every query of tenant-owned data in the view is filtered by
construction. ``TenantViewSet`` fixes ``get_queryset``; subclasses implement
``scoped_queryset()`` and cannot override the safe methods.
"""

from __future__ import annotations

from rest_framework import serializers, viewsets
from rest_framework.views import APIView

from agent_project.errors import ApiError
from tenants.auth import request_tenant
from tenants.models import Tenant
from tenants.scoping import tenant_scope


class TenantScopedMixin:
    tenant: Tenant
    #: name of a URL kwarg that names the tenant (e.g. ``/tenants/{tenant_id}/...``)
    tenant_url_kwarg = "tenant_id"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        self.tenant = request_tenant(request, kwargs.get(self.tenant_url_kwarg))
        self._tenant_scope = tenant_scope(self.tenant)
        self._tenant_scope.__enter__()

    def finalize_response(self, request, response, *args, **kwargs):
        scope_cm = self.__dict__.pop("_tenant_scope", None)
        try:
            return super().finalize_response(request, response, *args, **kwargs)
        finally:
            if scope_cm is not None:
                scope_cm.__exit__(None, None, None)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["tenant"] = getattr(self, "tenant", None)
        return context


class TenantAPIView(TenantScopedMixin, APIView):
    """For action-style routes (``POST /chat``, ``POST /kb/search``)."""

    def get_serializer_context(self):
        return {"request": self.request, "view": self, "format": self.format_kwarg, "tenant": self.tenant}


_SAFE_METHODS = ("get_queryset", "initial", "finalize_response")


class TenantViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """CRUD over one tenant-owned model. Implement ``scoped_queryset()``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _SAFE_METHODS:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {name}(); implement scoped_queryset() instead")

    def scoped_queryset(self):
        raise NotImplementedError

    def get_queryset(self):
        # The explicit filter is belt and braces: the scoped manager already filters.
        return self.scoped_queryset().filter(tenant=self.tenant)

    def perform_create(self, serializer):
        serializer.save(tenant=self.tenant)


class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary-key field that only accepts the request tenant's rows; another
    tenant's id reads as "does not exist", exactly like a missing one."""

    def get_queryset(self):
        tenant = self.context["tenant"]
        return super().get_queryset().filter(tenant=tenant)


def owned_or_404(queryset, what: str, **lookup):
    """The zulip-style access helper: missing and not-yours answer the same 404."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise ApiError(404, f"{what}_not_found", f"No {what.replace('_', ' ')} with that id.")
    return obj
