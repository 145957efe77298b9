"""Channel configuration and outbound delivery.

``channel_config_update`` / ``channel_config_public`` write and read the ``channels``
section of ``PUT/GET /tenants/{id}/settings`` (registered with ``tenants.sections`` by
``channels.apps``); secrets go in and never
come out (only whether each is set, and a masked hint). ``channel_deliver`` sends
texts to a customer on WhatsApp or Telegram in order, applying the platforms' hard
length limits and WhatsApp's 24-hour customer-service window.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import datetime

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_project.errors import ApiError
from agent_project.lib import http
from channels import telegram, whatsapp
from channels.base import TELEGRAM, WHATSAPP, SendOutcome
from agent_project.lib.encryption import mask
from channels.models import ChannelConfig, InboundMessage
from conversations.bubbles import split_bubbles
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger(__name__)

HARD_LIMITS = {WHATSAPP: whatsapp.MAX_TEXT_CHARS, TELEGRAM: telegram.MAX_TEXT_CHARS}
INLINE_RETRIES = 2  # per message, for a live reply; follow-ups retry through their dispatcher instead
INLINE_MAX_WAIT_SECONDS = 5.0

# --- configuration -------------------------------------------------------------

_FIELDS = {
    WHATSAPP: {
        "enabled": "whatsapp_enabled", "phone_number_id": "whatsapp_phone_number_id",
        "access_token": "whatsapp_access_token", "app_secret": "whatsapp_app_secret",
        "verify_token": "whatsapp_verify_token", "followup_template": "whatsapp_followup_template",
        "template_language": "whatsapp_template_language",
    },
    TELEGRAM: {
        "enabled": "telegram_enabled", "bot_token": "telegram_bot_token",
        "webhook_secret": "telegram_webhook_secret",
    },
}
SECRET_FIELDS = {WHATSAPP: ("access_token", "app_secret", "verify_token"), TELEGRAM: ("bot_token", "webhook_secret")}


def channel_config_get(*, tenant: Tenant) -> ChannelConfig | None:
    with tenant_scope(tenant):
        return ChannelConfig.objects.filter(tenant=tenant).first()


def webhook_path(*, tenant: Tenant, channel: str) -> str:
    return f"/channels/{channel}/{tenant.pk}/webhook"


def channel_config_public(*, tenant: Tenant) -> dict:
    """The channel settings as the API shows them: secrets only as ``<name>_set`` and a
    masked hint, never their value."""
    config = channel_config_get(tenant=tenant) or ChannelConfig(tenant=tenant)
    out = {}
    for channel, fields in _FIELDS.items():
        section = {}
        for key, attr in fields.items():
            value = getattr(config, attr)
            if key in SECRET_FIELDS[channel]:
                section[f"{key}_set"] = bool(value)
                section[f"{key}_hint"] = mask(value)
            else:
                section[key] = value
        section["ready"] = config.whatsapp_ready if channel == WHATSAPP else config.telegram_ready
        section["webhook_path"] = webhook_path(tenant=tenant, channel=channel)
        out[channel] = section
    return out


def _text(channel: str, key: str, value, *, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_channel_setting", f"{channel}.{key} must be text.",
                       details={"field": f"{channel}.{key}"})
    value = value.strip()
    if len(value) > max_length:
        raise ApiError(400, "invalid_channel_setting", f"{channel}.{key} is longer than {max_length} characters.",
                       details={"field": f"{channel}.{key}"})
    return value


def channel_config_update(*, tenant: Tenant, data: Mapping) -> dict:
    """Apply a partial update ``{"whatsapp": {...}, "telegram": {...}}`` and answer
    :func:`channel_config_public`. A key left out keeps its value; a secret set to
    ``""`` or ``null`` is cleared. Enabling a channel needs its credentials; Telegram's
    webhook secret is generated when none is given (``channel_telegram_register``
    hands it to Telegram). Nothing is saved when any check fails."""
    if not isinstance(data, Mapping):
        raise ApiError(400, "invalid_channel_settings", "channels must be an object with whatsapp and/or telegram.")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_channel", f"Unknown channel: {', '.join(unknown)}.",
                       details={"unknown": unknown, "known": list(_FIELDS)})
    with tenant_scope(tenant), transaction.atomic():
        config = (ChannelConfig.objects.select_for_update().filter(tenant=tenant).first()
                  or ChannelConfig(tenant=tenant))
        before = _claims(config)
        for channel, section in data.items():
            if not isinstance(section, Mapping):
                raise ApiError(400, "invalid_channel_settings", f"{channel} must be an object.")
            bad = sorted(set(section) - set(_FIELDS[channel]))
            if bad:
                raise ApiError(400, "unknown_channel_field", f"Unknown {channel} setting: {', '.join(bad)}.",
                               details={"unknown": bad, "known": list(_FIELDS[channel])})
            for key, value in section.items():
                attr = _FIELDS[channel][key]
                if key == "enabled":
                    if not isinstance(value, bool):
                        raise ApiError(400, "invalid_channel_setting", f"{channel}.enabled must be true or false.",
                                       details={"field": f"{channel}.enabled"})
                    setattr(config, attr, value)
                else:
                    setattr(config, attr, _text(channel, key, value, max_length=512))
        channel_config_check(config)
        after = _claims(config)
        for channel in _FIELDS:
            (was_on, old_account, old_proof), (on, account, proof) = before[channel], after[channel]
            if account and (account != old_account or (on and not was_on) or (proof and proof != old_proof)):
                channel_ownership_verify(config, channel)
        try:
            with transaction.atomic():
                config.save()
        except IntegrityError as exc:
            # Another tenant holds the account: answered exactly like credentials that do not own
            # it, so nobody learns whose numbers and bots are connected here.
            raise _not_verified(WHATSAPP if "whatsapp" in str(exc) else TELEGRAM) from None
    return channel_config_public(tenant=tenant)


def _claims(config: ChannelConfig) -> dict[str, tuple]:
    """Per channel: (enabled, the account claimed, the credential that proves it)."""
    return {WHATSAPP: (config.whatsapp_enabled, config.whatsapp_phone_number_id, config.whatsapp_access_token),
            TELEGRAM: (config.telegram_enabled, config.telegram_bot_id, config.telegram_bot_token)}


def _not_verified(channel: str) -> ApiError:
    account = "phone_number_id with this access_token" if channel == WHATSAPP else "bot with this bot_token"
    return ApiError(422, "channel_verification_failed",
                    f"{channel.capitalize()} did not confirm this {account}; check the credentials.",
                    details={"channel": channel})


def channel_ownership_verify(config: ChannelConfig, channel: str) -> None:
    """Ask the platform whether the credentials own the account being claimed (when it is set,
    changed or enabled), so nobody can connect a shop's WhatsApp number or Telegram bot they do
    not hold and lock its owner out. Raises ``422 channel_verification_failed``."""
    if channel == WHATSAPP:
        owned = bool(config.whatsapp_access_token) and whatsapp_client(config).owns_number()
    else:
        owned = telegram_client(config).is_bot(config.telegram_bot_id)
    if not owned:
        raise _not_verified(channel)


def channel_config_check(config: ChannelConfig) -> None:
    """Refuse an inconsistent configuration (ApiError); fills derived fields (bot id, a
    generated Telegram webhook secret). Shared by the API update and the admin form."""
    if config.whatsapp_phone_number_id and not config.whatsapp_phone_number_id.isdigit():
        raise ApiError(400, "invalid_channel_setting", "whatsapp.phone_number_id is the numeric id Meta shows "
                       "for the number (not the phone number itself).", details={"field": "whatsapp.phone_number_id"})
    if config.whatsapp_enabled:
        missing = [k for k in ("phone_number_id", "access_token", "app_secret", "verify_token")
                   if not getattr(config, _FIELDS[WHATSAPP][k])]
        if missing:
            raise ApiError(422, "channel_incomplete", "WhatsApp cannot be enabled without " + ", ".join(missing) + ".",
                           details={"channel": WHATSAPP, "missing": missing})
    if config.telegram_bot_token:
        config.telegram_bot_id = telegram.bot_id_of(config.telegram_bot_token)
        if not config.telegram_bot_id:
            raise ApiError(400, "invalid_channel_setting", "telegram.bot_token does not look like a token from "
                           "@BotFather (<bot id>:<secret>).", details={"field": "telegram.bot_token"})
    else:
        config.telegram_bot_id = ""
    if config.telegram_webhook_secret and not telegram.SECRET_TOKEN_RE.fullmatch(config.telegram_webhook_secret):
        raise ApiError(400, "invalid_channel_setting", "telegram.webhook_secret is 1-256 characters of "
                       "A-Z, a-z, 0-9, _ and -.", details={"field": "telegram.webhook_secret"})
    if config.telegram_enabled:
        if not config.telegram_bot_token:
            raise ApiError(422, "channel_incomplete", "Telegram cannot be enabled without bot_token.",
                           details={"channel": TELEGRAM, "missing": ["bot_token"]})
        if not config.telegram_webhook_secret:
            config.telegram_webhook_secret = secrets.token_urlsafe(32)


# --- clients -------------------------------------------------------------------

_local = threading.local()


def _http() -> httpx.Client:
    # One connection pool per thread (worker), reused across messages.
    timeout = settings.CHANNEL_HTTP_TIMEOUT_SECONDS
    cached = getattr(_local, "client", None)
    if cached is None or cached[0] != timeout:
        _local.client = cached = (timeout, http.client(timeout=timeout))
    return cached[1]


def whatsapp_client(config: ChannelConfig) -> whatsapp.WhatsAppClient:
    return whatsapp.WhatsAppClient(phone_number_id=config.whatsapp_phone_number_id,
                                   access_token=config.whatsapp_access_token,
                                   base_url=settings.WHATSAPP_API_BASE_URL, version=settings.WHATSAPP_API_VERSION,
                                   http_client=_http())


def telegram_client(config: ChannelConfig) -> telegram.TelegramClient:
    return telegram.TelegramClient(bot_token=config.telegram_bot_token, base_url=settings.TELEGRAM_API_BASE_URL,
                                   http_client=_http())


def channel_telegram_register(*, tenant: Tenant, public_base_url: str) -> SendOutcome:
    """Point the tenant's bot at our webhook (``setWebhook`` with the stored secret)."""
    config = channel_config_get(tenant=tenant)
    if config is None or not config.telegram_ready:
        raise ApiError(409, "channel_not_configured", "Telegram is not enabled for this tenant.")
    url = public_base_url.rstrip("/") + webhook_path(tenant=tenant, channel=TELEGRAM)
    return telegram_client(config).set_webhook(url=url, secret_token=config.telegram_webhook_secret)


# --- outbound ------------------------------------------------------------------

def fit_to_limit(text: str, channel: str) -> list[str]:
    """Cut a text that is longer than the platform accepts into messages it accepts
    (at paragraph/sentence/word boundaries; only a single giant word is cut inside)."""
    limit = HARD_LIMITS[channel]
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    pieces = []
    for bubble in split_bubbles(text, max_chars=limit, max_bubbles=None):
        pieces.extend(bubble[i:i + limit] for i in range(0, len(bubble), limit))
    return [p for p in pieces if p.strip()]


def whatsapp_last_customer_message_at(*, tenant: Tenant, user_id: str) -> datetime | None:
    with tenant_scope(tenant):
        return (InboundMessage.objects.filter(channel=WHATSAPP, user_id=user_id)
                .order_by("-sent_at").values_list("sent_at", flat=True).first())


def whatsapp_window_is_open(*, tenant: Tenant, user_id: str, now: datetime | None = None) -> bool:
    return whatsapp.window_open(last_customer_message_at=whatsapp_last_customer_message_at(
        tenant=tenant, user_id=user_id), now=now or timezone.now())


def _not_configured(channel: str) -> SendOutcome:
    return SendOutcome("permanent", f"channel_not_configured: {channel} is not enabled for this tenant",
                       "channel_not_configured")


def _send_one(channel: str, config: ChannelConfig, user_id: str, text: str) -> SendOutcome:
    if channel == WHATSAPP:
        return whatsapp_client(config).send_text(to=user_id, text=text)
    return telegram_client(config).send_message(chat_id=user_id, text=text)


def channel_deliver(*, tenant: Tenant, channel: str, user_id: str, texts: list[str],
                    inline_retries: int = INLINE_RETRIES) -> list[SendOutcome]:
    """Send ``texts`` as separate messages, in order, stopping at the first that fails
    (a later bubble must never arrive before an earlier one). A retryable failure is
    retried here a few times (honouring Telegram's ``retry_after``, capped). WhatsApp
    free-form text is refused outside the 24-hour window without calling the API.
    Answers one outcome per message attempted; never raises for a delivery problem."""
    config = channel_config_get(tenant=tenant)
    ready = config is not None and (config.whatsapp_ready if channel == WHATSAPP else
                                    config.telegram_ready if channel == TELEGRAM else False)
    if not ready:
        return [_not_configured(channel)]
    if channel == WHATSAPP and not whatsapp_window_is_open(tenant=tenant, user_id=user_id):
        return [SendOutcome("permanent", "whatsapp_window_closed: more than 24 hours since the customer's last "
                            "message; only a template message may be sent", str(whatsapp.WINDOW_CLOSED_CODE))]
    messages = [piece for text in texts for piece in fit_to_limit(text, channel)]
    outcomes: list[SendOutcome] = []
    for text in messages:
        outcome = _send_one(channel, config, user_id, text)
        for attempt in range(inline_retries):
            if outcome.outcome != "retry":
                break
            wait = outcome.retry_after if outcome.retry_after is not None else 0.5 * (2 ** attempt)
            time.sleep(min(wait, INLINE_MAX_WAIT_SECONDS))
            outcome = _send_one(channel, config, user_id, text)
        outcomes.append(outcome)
        if not outcome.ok:
            logger.warning("channels: %s message to %s for %s failed: %s", channel, user_id, tenant.pk,
                           outcome.detail)
            break
    return outcomes


def channel_send_followup(*, tenant: Tenant, channel: str, user_id: str, text: str) -> SendOutcome:
    """A follow-up on WhatsApp or Telegram. Inside WhatsApp's 24-hour window it is plain
    text; outside, it goes as the tenant's configured template (the text fills its one
    body parameter) or is refused permanently when no template is configured. Retries
    are left to the follow-up dispatcher (backoff, attempts, lease)."""
    if not user_id:
        return SendOutcome("permanent", f"no_channel_user: the contact has no {channel} id", "no_channel_user")
    config = channel_config_get(tenant=tenant)
    if channel == WHATSAPP and config is not None and config.whatsapp_ready and \
            not whatsapp_window_is_open(tenant=tenant, user_id=user_id):
        if not config.whatsapp_followup_template:
            return SendOutcome("permanent", "whatsapp_window_closed: the customer last wrote more than 24 hours ago "
                               "and no follow-up template is configured (channels.whatsapp.followup_template)",
                               str(whatsapp.WINDOW_CLOSED_CODE))
        return whatsapp_client(config).send_template(
            to=user_id, name=config.whatsapp_followup_template,
            language=config.whatsapp_template_language or "id", body_parameters=[text])
    outcomes = channel_deliver(tenant=tenant, channel=channel, user_id=user_id, texts=[text], inline_retries=0)
    failed = next((o for o in outcomes if not o.ok), None)
    return failed or outcomes[-1]
