"""How a follow-up leaves the building, one sender per channel.

``SENDERS`` maps a channel name to a sender; a channel without its own adapter goes
through ``settings.FOLLOWUP_DEFAULT_SENDER`` (the signed webhook: the tenant's own
system relays it to WhatsApp, e-mail, ...). Channel adapters plug in by adding an
entry. A sender never raises for a delivery problem: it answers a ``SendResult``
and the dispatcher decides between sent, retry and failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from django.conf import settings

from agent_project.lib import http
from followups.policy import Outcome, classify_status

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Layan-Signature"
TIMESTAMP_HEADER = "X-Layan-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Layan-Event"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    status_code: int | None = None
    retry_after: float | None = None  # the receiver's Retry-After, in seconds


class Sender(Protocol):
    name: str

    def send(self, *, followup, text: str) -> SendResult: ...


def signature_for(*, secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"<timestamp>." + body``: the timestamp is
    signed too, so a captured request cannot be replayed later with a fresh one."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_verify(*, secret: str, timestamp: str, body: bytes, signature: str,
                     now: float | None = None, tolerance: float = 300) -> bool:
    """What a receiver does (documented in docs/followups.md): recompute, compare in
    constant time, and refuse a timestamp older than ``tolerance`` seconds."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except (TypeError, ValueError):
        return False
    expected = signature_for(secret=secret, timestamp=timestamp, body=body)
    return age <= tolerance and hmac.compare_digest(expected, signature or "")


def webhook_payload(*, followup, text: str) -> dict:
    contact = followup.contact
    return {
        "event": "followup.send",
        "id": followup.pk,
        "idempotency_key": followup.idempotency_key,
        "tenant_id": followup.tenant_id,
        "channel": followup.channel,
        "user_id": followup.user_id,
        "contact": {"id": contact.pk, "name": contact.name, "phone": contact.phone, "email": contact.email},
        "conversation_id": followup.conversation_id,
        "message": text,
        "scheduled_at": followup.scheduled_at.isoformat(),
        "attempt": followup.attempts,
    }


_local = threading.local()


def _client() -> httpx.Client:
    # One client per worker process (and thread), so a batch reuses its connections.
    timeout = settings.FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS
    cached = getattr(_local, "client", None)
    if cached is None or cached[0] != timeout:
        _local.client = cached = (timeout, http.client(timeout=timeout))
    return cached[1]


class WebhookSender:
    """POSTs the follow-up as JSON to the tenant's ``webhook_url``, signed with its
    ``webhook_secret``; the idempotency key is the same on every attempt."""

    name = "webhook"

    def send(self, *, followup, text: str) -> SendResult:
        tenant = followup.tenant
        if not tenant.webhook_url:
            return SendResult("permanent", "webhook_not_configured: the tenant has no webhook_url")
        if not tenant.webhook_secret:
            return SendResult("permanent", "webhook_not_configured: the tenant has no webhook_secret")
        body = json.dumps(webhook_payload(followup=followup, text=text), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: "followup.send",
            IDEMPOTENCY_HEADER: followup.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature_for(secret=tenant.webhook_secret, timestamp=timestamp, body=body),
        }
        try:
            response = _client().post(tenant.webhook_url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return SendResult("retry", f"webhook_timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:  # refused, reset, DNS: the receiver may be back soon
            return SendResult("retry", f"webhook_unreachable: {type(exc).__name__}: {exc}")
        outcome = classify_status(response.status_code)
        if outcome == "sent":
            return SendResult("sent", f"HTTP {response.status_code}", response.status_code)
        retry_after = None
        if outcome == "retry" and response.headers.get("Retry-After"):
            retry_after = http.retry_after_seconds(response, default=0, cap=settings.FOLLOWUP_RETRY_MAX_SECONDS)
        snippet = response.text[:300].strip()
        return SendResult(outcome, f"webhook_http_{response.status_code}: {snippet}", response.status_code,
                          retry_after)


class LogSender:
    """For development: writes the follow-up to the log and calls it sent."""

    name = "log"

    def send(self, *, followup, text: str) -> SendResult:
        logger.info("follow-up %s for %s via %s to %s: %s", followup.idempotency_key, followup.tenant_id,
                    followup.channel, followup.user_id or f"contact {followup.contact_id}", text)
        return SendResult("sent", "logged")


SENDERS: dict[str, Sender] = {
    "webhook": WebhookSender(),
    "log": LogSender(),
}

# Channel adapters (channels/followup_senders.py): WhatsApp and Telegram deliver through
# the tenant's own number or bot (WhatsApp's 24-hour rule applied); a tenant that has not
# connected the channel falls back to FOLLOWUP_DEFAULT_SENDER as before.
from channels.followup_senders import TelegramSender, WhatsAppSender  # noqa: E402

SENDERS.update({"whatsapp": WhatsAppSender(), "telegram": TelegramSender()})


def sender_for(channel: str) -> Sender:
    return SENDERS.get(channel) or SENDERS[settings.FOLLOWUP_DEFAULT_SENDER]
