"""How a follow-up leaves the building, one sender per channel.

``SENDERS`` maps a channel name to a sender; a channel without its own adapter goes
through ``settings.FOLLOWUP_DEFAULT_SENDER`` (the signed webhook: the tenant's own
system relays it to WhatsApp, e-mail, ...). Channel adapters plug in with
``register_sender`` from their app's ``ready()`` (``channels.apps``): this module imports
no app above followups. A sender never raises for a delivery problem: it answers a
``SendResult`` and the dispatcher decides between sent, retry and failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from django.conf import settings

from agent_project.lib import http, outbound
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


def webhook_post(*, tenant, event: str, idempotency_key: str, body: bytes, timeout: float) -> SendResult:
    """POST a signed event to the tenant's ``webhook_url`` through the guarded outbound
    client (checked again now: DNS may have changed since the URL was set). Redirects are
    not followed (a signed webhook must not be sent elsewhere). The ``detail`` is what the
    tenant reads back: ``http 4xx``, ``timeout``, ``connection failed``, ``refused: private
    address`` — never the receiver's body nor a socket error's text."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        IDEMPOTENCY_HEADER: idempotency_key,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature_for(secret=tenant.webhook_secret, timestamp=timestamp, body=body),
    }
    try:
        fetched = outbound.fetch(method="POST", url=tenant.webhook_url, content=body, headers=headers, timeout=timeout,
                                 max_bytes=0, max_redirects=0, read_body=False)
    except outbound.OutboundError as exc:
        logger.info("webhook of %s not delivered: %s", tenant.pk, exc.message)
        # a refused destination stays refused; a timeout or a failed connection may pass later
        return SendResult("retry" if exc.code in ("timeout", "unreachable") else "permanent", exc.reason)
    outcome = classify_status(fetched.status)
    if outcome == "sent":
        return SendResult("sent", f"HTTP {fetched.status}", fetched.status)
    retry_after = None
    if outcome == "retry" and fetched.headers.get("Retry-After"):
        retry_after = http.retry_after_seconds(httpx.Response(fetched.status, headers=fetched.headers), default=0,
                                               cap=settings.FOLLOWUP_RETRY_MAX_SECONDS)
    return SendResult(outcome, outbound.status_reason(fetched.status), fetched.status, retry_after)


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
        return webhook_post(tenant=tenant, event="followup.send", idempotency_key=followup.idempotency_key, body=body,
                            timeout=settings.FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS)


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


def register_sender(channel: str, sender: Sender) -> None:
    """Deliver the follow-ups of ``channel`` through ``sender``. Called at app start by the
    app that owns the channel (WhatsApp and Telegram: ``channels.apps``)."""
    SENDERS[channel] = sender


def default_sender() -> Sender:
    """``settings.FOLLOWUP_DEFAULT_SENDER``: where a channel without its own adapter goes,
    and where a channel adapter hands over when the tenant has not connected it."""
    return SENDERS[settings.FOLLOWUP_DEFAULT_SENDER]


def sender_for(channel: str) -> Sender:
    return SENDERS.get(channel) or default_sender()
