"""Where tenant scopes are opened: the API opens one per request (tenants.viewsets),
tasks and commands open their own; the admin, an operator tool across tenants,
runs with scopes disabled and filters by tenant in its own views."""

from __future__ import annotations

from contextlib import contextmanager

from django_scopes import scope, scopes_disabled


@contextmanager
def tenant_scope(tenant):
    if tenant is None:
        # django-scopes treats None as "no filter": never let that happen by accident.
        raise ValueError("tenant_scope needs a tenant")
    with scope(tenant=tenant):
        yield


class AdminScopesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/admin"):
            with scopes_disabled():
                return self.get_response(request)
        return self.get_response(request)
