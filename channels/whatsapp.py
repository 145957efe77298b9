"""WhatsApp Cloud API: webhook verification and parsing, and the outbound client.

Pure parts (no ORM, no I/O) are table-tested: the ``X-Hub-Signature-256`` check,
the verify handshake, payload parsing, error classification and the 24-hour
customer-service window. ``WhatsAppClient`` sends through ``agent_project.lib.http``
to ``{WHATSAPP_API_BASE_URL}/{version}/{phone_number_id}/messages`` — the Graph API
in production, a local fake in tests.

Request and response shapes follow Meta's Cloud API reference ("Messages" and
"Webhooks"): a text message is ``{"messaging_product": "whatsapp", "recipient_type":
"individual", "to": <wa_id>, "type": "text", "text": {"preview_url": false, "body": …}}``
and a success answers ``{"messaging_product": "whatsapp", "contacts": [...],
"messages": [{"id": "wamid…"}]}``; errors answer ``{"error": {"message", "type",
"code", "error_subcode", "error_data": {"details"}, "fbtrace_id"}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from channels.base import InboundItem, SendOutcome

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_TEXT_CHARS = 4096  # a text message body
MAX_TEMPLATE_PARAM_CHARS = 1024  # one body parameter of a template
WINDOW = timedelta(hours=24)  # the customer-service window after the customer's last message

# Graph API error codes (Cloud API "Error codes" page) that mean "try again later":
# throttling, temporary outages and maintenance. Everything else, notably 131047 (the
# 24-hour window has closed), 190 (token expired), 100 (invalid parameter), 131026
# (undeliverable), 132000/132001 (template parameters/name) and 133010 (number not
# registered), will fail the same way every time: permanent.
RETRY_CODES = frozenset({
    1,       # API unknown
    2,       # API service: temporary
    4,       # API too many calls (application rate limit)
    17,      # API user too many calls
    341,     # application limit reached
    80007,   # WhatsApp Business Account rate limit
    130429,  # throughput (messages per second) reached
    131000,  # something went wrong
    131016,  # service unavailable
    131048,  # spam rate limit
    131056,  # too many messages to one recipient (pair rate limit)
    131057,  # account in maintenance mode
    133004,  # server temporarily unavailable
})
WINDOW_CLOSED_CODE = 131047

# Message types a customer can send (webhook "messages[].type"). "button" (a template
# quick reply) and "interactive" (a list/button reply) carry text we can answer.
MEDIA_KINDS = frozenset({"image", "audio", "video", "document", "sticker", "location", "contacts", "order",
                         "unsupported", "unknown", "system"})


class PayloadError(ValueError):
    """The body is not a WhatsApp Business Account webhook."""


def signature_valid(*, app_secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the app secret>``."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.strip())


def sign(*, app_secret: str, body: bytes) -> str:
    """What Meta sends (tests use it to play the platform)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_handshake(*, params, verify_token: str) -> str | None:
    """The subscription check: ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…``.
    Answers the challenge to echo back, or None to refuse."""
    if not verify_token or params.get("hub.mode") != "subscribe":
        return None
    if not hmac.compare_digest(str(params.get("hub.verify_token", "")).encode(), verify_token.encode()):
        return None
    challenge = str(params.get("hub.challenge", ""))
    return challenge or None


@dataclass
class ParsedWebhook:
    items: list[InboundItem] = field(default_factory=list)
    statuses: int = 0  # delivery/read receipts for messages we sent
    foreign_numbers: set[str] = field(default_factory=set)  # entries for a phone number id that is not ours


def _text_of(message: dict) -> tuple[str, str]:
    kind = str(message.get("type") or "unknown")
    if kind == "text":
        return "text", str((message.get("text") or {}).get("body") or "")
    if kind == "button":  # quick-reply button of a template
        return "text", str((message.get("button") or {}).get("text") or "")
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return "text", str(reply.get("title") or "")
    return kind, ""


def _when(value) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


def parse_webhook(payload, *, phone_number_id: str) -> ParsedWebhook:
    """The customer messages addressed to ``phone_number_id``. Messages for any other
    number are not returned but named in ``foreign_numbers``, so the caller can refuse a
    delivery meant for another tenant even when both share one Meta app (one app secret)."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise PayloadError("not a whatsapp_business_account webhook")
    parsed = ParsedWebhook()
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            if (change or {}).get("field") != "messages":
                continue
            value = change.get("value") or {}
            number = str((value.get("metadata") or {}).get("phone_number_id") or "")
            if number != phone_number_id:
                parsed.foreign_numbers.add(number)
                continue
            parsed.statuses += len(value.get("statuses") or [])
            names = {str(c.get("wa_id")): str((c.get("profile") or {}).get("name") or "")
                     for c in value.get("contacts") or [] if isinstance(c, dict)}
            for message in value.get("messages") or []:
                if not isinstance(message, dict) or not message.get("id") or not message.get("from"):
                    continue
                wa_id = str(message["from"])
                kind, text = _text_of(message)
                parsed.items.append(InboundItem(
                    external_id=str(message["id"]), user_id=wa_id, kind=kind, text=text.strip(),
                    sent_at=_when(message.get("timestamp")), name=names.get(wa_id, ""),
                    phone="+" + wa_id if wa_id.isdigit() else None,
                ))
    return parsed


def window_open(*, last_customer_message_at: datetime | None, now: datetime) -> bool:
    """Free-form messages may be sent only within 24 hours of the customer's last
    message; outside it, only an approved template may open the conversation again."""
    return last_customer_message_at is not None and now - last_customer_message_at < WINDOW


_TEMPLATE_PARAM_SPACES = re.compile(r"[\t\n\r]+| {5,}")


def template_parameter(text: str) -> str:
    """A template body parameter may not contain newlines, tabs or more than four
    consecutive spaces (error 132018); fold them into single spaces and cut to size."""
    folded = _TEMPLATE_PARAM_SPACES.sub(" ", text).strip()
    return folded if len(folded) <= MAX_TEMPLATE_PARAM_CHARS else folded[: MAX_TEMPLATE_PARAM_CHARS - 1] + "…"


def classify_error(status_code: int, body) -> SendOutcome:
    """A Graph API error answer → retry or permanent, with the platform's code and words."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") is not None:
        try:
            code = int(error.get("code"))
        except (TypeError, ValueError):
            code = -1
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else ""
        detail = f"whatsapp_error_{code}: {error.get('message') or ''}" + (f" ({details})" if details else "")
        retryable = code in RETRY_CODES or (code not in (WINDOW_CLOSED_CODE,) and status_code >= 500)
        return SendOutcome("retry" if retryable else "permanent", detail, str(code), status_code)
    retryable = status_code in (408, 429) or status_code >= 500
    return SendOutcome("retry" if retryable else "permanent", f"whatsapp_http_{status_code}", str(status_code),
                       status_code)


class WhatsAppClient:
    """One business phone number's sender."""

    def __init__(self, *, phone_number_id: str, access_token: str, base_url: str, version: str,
                 http_client: httpx.Client):
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.url = f"{base_url.rstrip('/')}/{version}/{phone_number_id}/messages"
        self.http = http_client

    def send_text(self, *, to: str, text: str) -> SendOutcome:
        if not text.strip():
            raise ValueError("a WhatsApp text message cannot be empty")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"a WhatsApp text message is at most {MAX_TEXT_CHARS} characters")
        return self._post({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": text},
        })

    def send_template(self, *, to: str, name: str, language: str, body_parameters: list[str]) -> SendOutcome:
        template: dict = {"name": name, "language": {"code": language}}
        if body_parameters:
            template["components"] = [{
                "type": "body",
                "parameters": [{"type": "text", "text": template_parameter(p)} for p in body_parameters],
            }]
        return self._post({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": template,
        })

    def owns_number(self) -> bool:
        """Does this token reach this phone number? ``GET /{version}/{phone_number_id}`` (Graph API
        "WhatsApp Business Phone Number") answers the number's fields, ``id`` among them, only to a
        token of the business that owns it; anything else (190 bad token, 100 unknown or foreign id,
        a network failure) is "no"."""
        try:
            response = self.http.get(self.url.removesuffix("/messages"),
                                     headers={"Authorization": f"Bearer {self.access_token}"})
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return False
        return response.status_code == 200 and isinstance(body, dict) and str(body.get("id")) == self.phone_number_id

    def _post(self, payload: dict) -> SendOutcome:
        try:
            response = self.http.post(self.url, json=payload,
                                      headers={"Authorization": f"Bearer {self.access_token}"})
        except httpx.TimeoutException as exc:
            return SendOutcome("retry", f"whatsapp_timeout: {type(exc).__name__}", "timeout")
        except httpx.HTTPError as exc:
            return SendOutcome("retry", f"whatsapp_unreachable: {type(exc).__name__}: {exc}", "unreachable")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and body.get("messages"):
            message_id = str((body["messages"][0] or {}).get("id") or "")
            return SendOutcome("sent", f"HTTP {response.status_code}", "", response.status_code, message_id)
        return classify_error(response.status_code, body)
