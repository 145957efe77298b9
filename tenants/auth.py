"""Who is calling: ``X-API-Key`` → an :class:`ApiClient` acting for one tenant (a
tenant key) or for any tenant it names (the global ``API_KEY``)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_scopes import scopes_disabled
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from agent_project.errors import ApiError
from agent_project.lib import failures
from tenants import keys
from tenants.models import ApiKey, Tenant

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute


@dataclass(frozen=True)
class ApiClient:
    tenant_id: str | None  # None for the global key
    key_id: int | None
    key_prefix: str
    is_authenticated: bool = True

    @property
    def is_global(self) -> bool:
        return self.tenant_id is None

    @property
    def label(self) -> str:
        return "global" if self.is_global else f"key:{self.key_prefix}"


class ApiKeyAuthentication(BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw = request.META.get(self.header, "").strip()
        if not raw:
            return None
        if not settings.AUTH_THROTTLE_ENABLED:
            return api_client_for_key(raw), raw
        # Guessing keys: past a burst of invalid ones, every key from that address waits (a valid
        # key answering 200 meanwhile would tell the guesser it has found one).
        address = "authkey:" + failures.client_address(request)
        count, left = failures.failure_count(address)
        if count >= settings.AUTH_FAILURE_LIMIT:
            raise _too_many_failures(left)
        try:
            return api_client_for_key(raw), raw
        except ApiError as exc:
            if exc.status_code == 401:
                count, left = failures.failure_record(address, window=settings.AUTH_FAILURE_WINDOW_SECONDS)
                if count > settings.AUTH_FAILURE_LIMIT:
                    raise _too_many_failures(left) from None
            raise

    def authenticate_header(self, request):
        return 'ApiKey header="X-API-Key"'


def _too_many_failures(seconds: int) -> ApiError:
    return ApiError(429, "too_many_failed_authentications",
                    f"Too many invalid API keys from this address; retry in {seconds}s.",
                    details={"retry_after_seconds": seconds}, headers=failures.retry_after(seconds))


def api_client_for_key(raw: str) -> ApiClient:
    if settings.API_KEY and hmac.compare_digest(raw.encode(), settings.API_KEY.encode()):
        return ApiClient(tenant_id=None, key_id=None, key_prefix="global")
    with scopes_disabled():  # the key is what tells us the tenant
        # Several keys may share a lookup prefix (custom keys chosen by clients): each is compared.
        candidates = list(ApiKey.objects.select_related("tenant").filter(prefix=keys.key_prefix(raw)))
    api_key = None
    for candidate in candidates:
        if keys.key_matches(raw, candidate.key_hash):
            api_key = candidate
    if api_key is None:
        raise ApiError(401, "invalid_api_key", "The API key is not valid.")
    now = timezone.now()
    state = api_key.state(now)
    if state == "revoked":
        raise ApiError(401, "api_key_revoked", "This API key has been revoked.")
    if state == "expired":
        raise ApiError(401, "api_key_expired", "This API key has expired.")
    if not api_key.tenant.is_active:
        raise ApiError(403, "tenant_disabled", "This tenant is disabled.")
    if not api_key.last_used_at or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        with scopes_disabled():
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return ApiClient(tenant_id=api_key.tenant_id, key_id=api_key.pk, key_prefix=api_key.prefix)


class IsApiClient(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, ApiClient)


def named_tenant_ids(request, path_tenant_id: str | None = None) -> set[str]:
    """Every tenant the request names: the path, ``X-Tenant-Id``, a body ``tenant_id``."""
    named = set()
    if path_tenant_id:
        named.add(str(path_tenant_id))
    header = request.META.get("HTTP_X_TENANT_ID", "").strip()
    if header:
        named.add(header)
    data = getattr(request, "data", None)
    if isinstance(data, dict) and data.get("tenant_id") not in (None, ""):
        named.add(str(data.get("tenant_id")))
    return named


def request_tenant_id(request, path_tenant_id: str | None = None) -> str:
    """The tenant this request acts for. A tenant key naming another tenant gets 403;
    the global key must name exactly one."""
    client: ApiClient = request.user
    named = named_tenant_ids(request, path_tenant_id)
    if not client.is_global:
        if named - {client.tenant_id}:
            raise ApiError(403, "tenant_mismatch", "This API key belongs to another tenant.")
        return client.tenant_id
    if not named:
        raise ApiError(400, "tenant_required",
                       "The global API key must name a tenant with the X-Tenant-Id header or tenant_id.")
    if len(named) > 1:
        raise ApiError(400, "tenant_ambiguous", "The request names more than one tenant.", details=sorted(named))
    return named.pop()


def request_tenant(request, path_tenant_id: str | None = None) -> Tenant:
    tenant_id = request_tenant_id(request, path_tenant_id)
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        raise ApiError(404, "tenant_not_found", f"Tenant '{tenant_id}' does not exist.")
    if not tenant.is_active:
        raise ApiError(403, "tenant_disabled", "This tenant is disabled.")
    return tenant
