"""Telegram Bot API: webhook secret check, update parsing, and the outbound client.

Telegram POSTs each ``Update`` to the webhook set with ``setWebhook(url, secret_token)``
and sends that token back in ``X-Telegram-Bot-Api-Secret-Token``. Replies go to
``{TELEGRAM_API_BASE_URL}/bot<token>/sendMessage`` as JSON ``{"chat_id", "text"}``;
every answer is ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code",
"description", "parameters": {"retry_after"?, "migrate_to_chat_id"?}}`` (Bot API
reference, "Making requests" and "ResponseParameters").
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime

import httpx

from channels.base import InboundItem, SendOutcome

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TEXT_CHARS = 4096  # sendMessage text, after entity parsing (we send plain text)
SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token
BOT_TOKEN_RE = re.compile(r"(\d{3,20}):[A-Za-z0-9_-]{30,}")
# Message fields that mean "not text": the customer gets a polite reply, the message is logged.
MEDIA_FIELDS = ("photo", "video", "animation", "audio", "voice", "video_note", "document", "sticker",
                "location", "venue", "contact", "poll", "dice", "game", "invoice")


class PayloadError(ValueError):
    """The body is not a Telegram Update."""


def secret_valid(*, expected: str, header: str | None) -> bool:
    return bool(expected) and header is not None and hmac.compare_digest(header.encode(), expected.encode())


def bot_id_of(token: str) -> str:
    """``123456789:AA…`` → ``123456789`` (the bot's user id; not secret)."""
    match = BOT_TOKEN_RE.fullmatch(token or "")
    return match.group(1) if match else ""


def parse_update(update) -> InboundItem | None:
    """The customer message in an Update, or None for updates we do not answer (edits,
    channel posts, callback queries, messages from other bots, service messages)."""
    if not isinstance(update, dict) or "update_id" not in update:
        raise PayloadError("not a Telegram Update")
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    chat = message.get("chat") or {}
    sender = message.get("from") or {}
    if chat.get("id") is None or message.get("message_id") is None or sender.get("is_bot"):
        return None
    if "text" in message:
        kind, text = "text", str(message.get("text") or "")
    else:
        kind = next((f for f in MEDIA_FIELDS if f in message), "")
        if not kind:
            return None  # a service message (member joined, pinned, …): nothing to answer
        text = str(message.get("caption") or "")
    name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p) or \
        str(sender.get("username") or "")
    try:
        sent_at = datetime.fromtimestamp(int(message.get("date")), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        sent_at = datetime.now(tz=UTC)
    chat_id = str(chat["id"])
    return InboundItem(external_id=f"{chat_id}:{message['message_id']}", user_id=chat_id, kind=kind,
                       text=text.strip(), sent_at=sent_at, name=name[:200])


def classify_error(status_code: int, body) -> SendOutcome:
    """429 (flood control, with ``parameters.retry_after``) and 5xx: retry. 400 (chat not
    found, message too long), 401 (bad token), 403 (the user blocked the bot) and other
    4xx fail the same way every time: permanent."""
    code = status_code
    description = ""
    retry_after = None
    if isinstance(body, dict):
        try:
            code = int(body.get("error_code") or status_code)
        except (TypeError, ValueError):
            code = status_code
        description = str(body.get("description") or "")
        parameters = body.get("parameters") or {}
        if isinstance(parameters, dict) and parameters.get("retry_after") is not None:
            try:
                retry_after = float(parameters["retry_after"])
            except (TypeError, ValueError):
                retry_after = None
        if isinstance(parameters, dict) and parameters.get("migrate_to_chat_id"):
            description += f" (the group moved to chat {parameters['migrate_to_chat_id']})"
    retryable = code in (408, 429) or code >= 500 or status_code >= 500
    return SendOutcome("retry" if retryable else "permanent", f"telegram_error_{code}: {description}".strip(),
                       str(code), status_code, retry_after=retry_after)


class TelegramClient:
    def __init__(self, *, bot_token: str, base_url: str, http_client: httpx.Client):
        self.base = f"{base_url.rstrip('/')}/bot{bot_token}"
        self.http = http_client

    def send_message(self, *, chat_id: str, text: str) -> SendOutcome:
        if not text.strip():
            raise ValueError("a Telegram message cannot be empty")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"a Telegram message is at most {MAX_TEXT_CHARS} characters")
        # Plain text (no parse_mode): a reply with "_" or "*" must not be refused as bad Markdown.
        outcome, result = self._call("sendMessage", {"chat_id": _chat_id(chat_id), "text": text,
                                                     "link_preview_options": {"is_disabled": True}})
        if outcome.ok and isinstance(result, dict):
            return SendOutcome("sent", outcome.detail, "", outcome.status_code, str(result.get("message_id", "")))
        return outcome

    def is_bot(self, bot_id: str) -> bool:
        """Is this token that bot's? ``getMe`` answers the bot's own User (``id``, ``is_bot``) to
        its token only; a wrong or revoked token gets 401, a network failure is "no" too."""
        try:
            response = self.http.get(f"{self.base}/getMe")
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return False
        result = body.get("result") if isinstance(body, dict) and body.get("ok") is True else None
        return isinstance(result, dict) and result.get("is_bot") is True and str(result.get("id")) == bot_id

    def set_webhook(self, *, url: str, secret_token: str) -> SendOutcome:
        outcome, _ = self._call("setWebhook", {"url": url, "secret_token": secret_token,
                                               "allowed_updates": ["message"]})
        return outcome

    def _call(self, method: str, payload: dict) -> tuple[SendOutcome, object]:
        try:
            response = self.http.post(f"{self.base}/{method}", json=payload)
        except httpx.TimeoutException as exc:
            return SendOutcome("retry", f"telegram_timeout: {type(exc).__name__}", "timeout"), None
        except httpx.HTTPError as exc:
            # the URL holds the bot token: never put the exception text (which names it) in a log
            return SendOutcome("retry", f"telegram_unreachable: {type(exc).__name__}", "unreachable"), None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and body.get("ok") is True:
            return SendOutcome("sent", f"HTTP {response.status_code}", "", response.status_code), body.get("result")
        return classify_error(response.status_code, body), None


def _chat_id(value: str):
    # Telegram documents chat_id as "Integer or String" (a @channelusername); send ids as numbers.
    return int(value) if re.fullmatch(r"-?\d+", str(value)) else str(value)
