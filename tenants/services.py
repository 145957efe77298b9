from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_project.errors import ApiError
from agent_project.lib import outbound
from tenants import hours, keys
from tenants.models import ApiKey, Tenant
from tenants.sections import SECTIONS

PRIMARY_KEY_NAME = "primary"  # the key managed through PUT /tenants/{id}/settings
SETTINGS_FIELDS = ("name", "persona", "sop", "locale", "timezone", "working_hours", "holidays", "webhook_url",
                   "webhook_secret", "rate_limit_per_minute", "chat_rate_limit_per_minute",
                   "upload_rate_limit_per_minute", "handoff_on_unanswered", "handoff_resume_minutes", "synonyms")
RATE_LIMIT_FIELDS = {"rate_limit_per_minute": "RATE_LIMIT_DEFAULT_PER_MINUTE",
                     "chat_rate_limit_per_minute": "RATE_LIMIT_CHAT_PER_MINUTE",
                     "upload_rate_limit_per_minute": "RATE_LIMIT_UPLOAD_PER_MINUTE"}
SYNONYM_GROUPS_MAX = 300
SYNONYM_GROUP_WORDS_MAX = 20
_SYNONYM_WORD = re.compile(r"[^\W_]+")


def synonyms_normalize(value) -> list[str]:
    """A tenant's synonym groups as stored: a list of strings, each its distinct lower-case
    words joined by spaces (an operator may separate them with commas). Raises ValueError."""
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise ValueError('synonyms must be a list of strings, one group of words each: ["kulkas refrigerator"]')
    groups = []
    for group in value:
        words = list(dict.fromkeys(_SYNONYM_WORD.findall(group.lower())))
        if not words:
            continue
        if len(words) < 2:
            raise ValueError(f"synonym group {group!r} has one word; a group needs two or more")
        if len(words) > SYNONYM_GROUP_WORDS_MAX or any(len(w) > 50 for w in words):
            raise ValueError(f"synonym group {group!r} is too long (at most {SYNONYM_GROUP_WORDS_MAX} words "
                             "of 50 letters)")
        groups.append(" ".join(words))
    if len(groups) > SYNONYM_GROUPS_MAX:
        raise ValueError(f"at most {SYNONYM_GROUPS_MAX} synonym groups")
    return groups


def api_key_create(*, tenant: Tenant, name: str = "default", expires_at: datetime | None = None,
                   key: str | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never retrievable again."""
    if key is None:
        key = keys.key_generate()
    else:
        weakness = keys.key_weakness(key)
        if weakness:
            raise ApiError(422, "weak_api_key", f"api_key must be {weakness}.")
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                tenant=tenant, name=name, prefix=keys.key_prefix(key), key_hash=keys.key_hash(key), expires_at=expires_at
            )
    except IntegrityError:
        # Only the very same key is taken (keys may share their lookup prefix): a key someone else
        # already holds is not a random one, and it gets the same answer as any other weak key.
        raise ApiError(422, "weak_api_key", "api_key must be random characters (this key is too predictable: "
                       "use a generated one).") from None
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if not api_key.revoked_at:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_rotate(*, api_key: ApiKey, grace: timedelta = timedelta(hours=24)) -> tuple[ApiKey, str]:
    """Issue a successor with the same name; the old key keeps working for ``grace`` so
    clients can switch over without downtime (zero grace revokes it at once)."""
    with transaction.atomic():
        new_key, plaintext = api_key_create(tenant=api_key.tenant, name=api_key.name)
        if grace:
            cutoff = timezone.now() + grace
            if not api_key.expires_at or api_key.expires_at > cutoff:
                api_key.expires_at = cutoff
                api_key.save(update_fields=["expires_at"])
        else:
            api_key_revoke(api_key=api_key)
    return new_key, plaintext


def webhook_url_check(url: str) -> None:
    """``422 url_not_allowed`` naming the rule for a webhook URL the outbound client would
    refuse (another scheme, credentials in it, an internal address or name)."""
    if not url:
        return
    try:
        outbound.url_check(url)
    except outbound.OutboundError as exc:
        raise ApiError(422, "url_not_allowed", f"webhook_url is not allowed ({exc.rule}): {exc.message}.",
                       details={"field": "webhook_url", "rule": exc.rule}) from None


def tenant_settings_clean(data: dict) -> dict:
    """Validate and normalise the settings fields shared by the API and the admin."""
    cleaned = dict(data)
    webhook_url_check(cleaned.get("webhook_url") or "")
    try:
        if "working_hours" in cleaned:
            cleaned["working_hours"] = hours.normalize_working_hours(cleaned["working_hours"])
        if "holidays" in cleaned:
            cleaned["holidays"] = hours.normalize_holidays(cleaned["holidays"])
        if "timezone" in cleaned:
            hours.get_zone(cleaned["timezone"])
        if "synonyms" in cleaned:
            cleaned["synonyms"] = synonyms_normalize(cleaned["synonyms"])
    except (hours.HoursError, ValueError) as exc:
        raise ApiError(422, "invalid_settings", str(exc)) from None
    return cleaned


def rate_limits_only_lowered(*, tenant: Tenant, data: dict) -> None:
    """A tenant's own key may lower its rate limits, never raise them: another tenant's
    throughput depends on them. ``403 rate_limit_raise_forbidden`` for a value above the
    limit in force (the tenant's own, or the installation's default), or for ``null`` (back
    to the default) when that is higher."""
    from django.conf import settings

    for field, default_setting in RATE_LIMIT_FIELDS.items():
        if field not in data:
            continue
        current = getattr(tenant, field) or getattr(settings, default_setting)
        requested = data[field] or getattr(settings, default_setting)
        if requested > current:
            raise ApiError(403, "rate_limit_raise_forbidden",
                           f"{field} may only be lowered with a tenant key (in force: {current} per minute); the "
                           "installation raises it (global key, or a superuser in the admin).",
                           details={"field": field, "current": current, "requested": data[field]})


def tenant_upsert(*, tenant_id: str, data: dict, api_key: str | None = None, sections: dict | None = None,
                  may_create: bool, may_raise_limits: bool | None = None) -> tuple[Tenant, bool, str | None]:
    """Create or update a tenant's settings.

    Returns ``(tenant, created, plaintext_key)``. On creation a key is always
    issued (the given ``api_key`` or a random one); on update a given ``api_key``
    replaces the tenant's primary key. The plaintext is returned once, here. ``sections``
    (``{name: data}``, the sections other apps registered in ``tenants.sections``, such as the
    channels' WhatsApp/Telegram settings) are written in the same transaction, so a refused
    section leaves the tenant's other settings unchanged too. Without ``may_raise_limits``
    (default: as ``may_create``, the global key) rate limits may only be lowered.
    """
    data = tenant_settings_clean({k: v for k, v in data.items() if k in SETTINGS_FIELDS})
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().filter(pk=tenant_id).first()
        created = tenant is None
        if created:
            if not may_create:
                raise ApiError(404, "tenant_not_found", f"Tenant '{tenant_id}' does not exist.")
            data.setdefault("name", tenant_id)
            tenant = Tenant.objects.create(id=tenant_id, **data)
        else:
            if not (may_create if may_raise_limits is None else may_raise_limits):
                rate_limits_only_lowered(tenant=tenant, data=data)
            for field, value in data.items():
                setattr(tenant, field, value)
            tenant.save()
        for name, section_data in (sections or {}).items():
            SECTIONS[name].write(tenant=tenant, data=section_data)
        plaintext = None
        if created or api_key:
            plaintext = _primary_key_replace(tenant=tenant, key=api_key or None)
    return tenant, created, plaintext


def _primary_key_replace(*, tenant: Tenant, key: str | None) -> str | None:
    current = list(ApiKey.objects.with_scope(tenant=tenant).filter(name=PRIMARY_KEY_NAME, revoked_at__isnull=True))
    if key and any(keys.key_matches(key, k.key_hash) for k in current):
        return None  # the same key sent again: nothing to change, nothing to reveal
    _, plaintext = api_key_create(tenant=tenant, name=PRIMARY_KEY_NAME, key=key)
    for old in current:
        api_key_revoke(api_key=old)
    return plaintext
