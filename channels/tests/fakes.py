"""Local fakes of the WhatsApp Cloud API and the Telegram Bot API, on 127.0.0.1 in threads.

They accept exactly the documented request shapes and answer with documented bodies:

* WhatsApp (Graph API ``POST /{version}/{phone_number_id}/messages``, Bearer token):
  ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}], "messages":
  [{"id": "wamid…"}]}``; errors ``{"error": {"message", "type", "code", "error_subcode"?,
  "error_data": {"messaging_product", "details"}, "fbtrace_id"}}`` — 190 for a bad
  token, 100 for an invalid parameter, 131047 for free-form text outside the 24-hour
  window (the fake keeps each customer's last message time, as the platform does),
  132001 for an unknown template, 132018 for a template parameter with a newline.
* Telegram (``POST /bot<token>/sendMessage`` and ``/setWebhook``, JSON):
  ``{"ok": true, "result": Message}``; errors ``{"ok": false, "error_code",
  "description", "parameters"?}`` — 401 Unauthorized, 400 chat not found / message is
  too long / message text is empty, 403 bot was blocked by the user.

``fail_next(...)`` scripts the platform's rate-limit and outage answers. Every request
that arrived is kept in ``requests`` (and every accepted message in ``sent``) in order.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent_project.testing.fakehttp import FakeHTTPServer, Request, Response


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: object  # the JSON body, or the raw bytes when it is not JSON


def _body(request: Request):
    return request.body if request.body is not None else request.raw or None


class _FakeBase(FakeHTTPServer):
    def __init__(self):
        super().__init__(self._answer)
        self.sent: list[dict] = []
        self.failures: list[tuple[int, dict]] = []

    @property
    def requests(self) -> list[Recorded]:
        return [Recorded(r.method, r.target, r.headers, _body(r)) for r in super().requests if r.method == "POST"]

    @property
    def lookups(self) -> list[Recorded]:
        """The GET requests (ownership checks: Graph's phone number, Telegram's getMe)."""
        return [Recorded(r.method, r.target, r.headers, None) for r in super().requests if r.method == "GET"]

    def _answer(self, request: Request) -> Response:
        if request.method == "GET":
            status, answer = self.handle_get(request.target, request.headers)
            return Response(status, answer)
        if request.method != "POST":
            return Response(404, {"error": "not found"})
        with self.lock:
            scripted = self.failures.pop(0) if self.failures else None
        status, answer = scripted or self.handle(request.target, request.headers, _body(request))
        return Response(status, answer)


# --- WhatsApp Cloud API -----------------------------------------------------------

_WA_TOP_KEYS = {"messaging_product", "recipient_type", "to", "type", "text", "template", "context",
                "biz_opaque_callback_data"}
_WA_PATH = re.compile(r"^/(v\d+\.\d+)/(\d+)/messages$")


def wa_error(code: int, message: str, details: str = "", subcode: int | None = None, kind: str = "OAuthException"):
    error = {"message": message, "type": kind, "code": code,
             "error_data": {"messaging_product": "whatsapp", "details": details or message},
             "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUv"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


class FakeWhatsApp(_FakeBase):
    """``GET /{version}/{phone_number_id}`` answers the number (``{"verified_name",
    "display_phone_number", "id", "quality_rating", "code_verification_status"}``) to its own
    token; another token gets 190, another business's number 100 "does not exist"."""

    def __init__(self, *, version: str = "v21.0"):
        super().__init__()
        self.version = version
        self.numbers: dict[str, str] = {}  # phone_number_id → access token
        self.templates: set[tuple[str, str]] = set()  # (name, language)
        self.last_customer_message: dict[str, datetime] = {}  # wa_id → when they last wrote
        self._ids = itertools.count(1)

    def add_number(self, phone_number_id: str, token: str):
        self.numbers[phone_number_id] = token

    def approve_template(self, name: str, language: str):
        self.templates.add((name, language))

    def customer_wrote(self, wa_id: str, at: datetime | None = None):
        self.last_customer_message[wa_id] = at or datetime.now(tz=UTC)

    def fail_next(self, status: int, code: int, message: str, times: int = 1):
        self.failures.extend([(status, wa_error(code, message))] * times)

    def texts(self, to: str | None = None) -> list[str]:
        return [m["text"]["body"] for m in self.sent if m["type"] == "text" and (to is None or m["to"] == to)]

    def handle_get(self, path, headers):
        match = re.fullmatch(r"/(v\d+\.\d+)/(\d+)", path.split("?")[0])
        if not match or match.group(1) != self.version:
            return 400, wa_error(100, "Unknown path components", kind="OAuthException")
        number, auth = match.group(2), headers.get("Authorization", "")
        tokens = set(self.numbers.values())
        if auth.removeprefix("Bearer ") not in tokens:
            return 401, wa_error(190, "Invalid OAuth access token - Cannot parse access token")
        if self.numbers.get(number) != auth.removeprefix("Bearer "):
            return 400, wa_error(100, f"Unsupported get request. Object with ID '{number}' does not exist, cannot be "
                                 "loaded due to missing permissions, or does not support this operation.",
                                 kind="GraphMethodException")
        return 200, {"verified_name": "Toko Test", "display_phone_number": "+62 811-0000-0000", "id": number,
                     "quality_rating": "GREEN", "code_verification_status": "VERIFIED"}

    def handle(self, path, headers, body):
        match = _WA_PATH.match(path.split("?")[0])
        if not match or match.group(1) != self.version:
            return 400, wa_error(100, "Unsupported post request.", kind="GraphMethodException")
        number = match.group(2)
        token = self.numbers.get(number)
        auth = headers.get("Authorization", "")
        if token is None or auth != f"Bearer {token}":
            return 401, wa_error(190, "Invalid OAuth access token - Cannot parse access token")
        if not headers.get("Content-Type", "").startswith("application/json") or not isinstance(body, dict):
            return 400, wa_error(100, "Invalid parameter", "The request body must be JSON.")
        unknown = set(body) - _WA_TOP_KEYS
        if unknown:
            return 400, wa_error(100, f"(#100) Param {sorted(unknown)[0]} is not a valid parameter")
        if body.get("messaging_product") != "whatsapp":
            return 400, wa_error(100, "(#100) The parameter messaging_product is required.")
        if body.get("recipient_type", "individual") != "individual":
            return 400, wa_error(100, "(#100) Invalid parameter recipient_type")
        to = body.get("to")
        if not isinstance(to, str) or not re.fullmatch(r"\+?\d{6,15}", to):
            return 400, wa_error(100, "(#100) Invalid parameter", "to must be a phone number / wa_id")
        kind = body.get("type", "text")
        if kind == "text":
            text = body.get("text")
            if not isinstance(text, dict) or set(text) - {"body", "preview_url"} or \
                    not isinstance(text.get("body"), str):
                return 400, wa_error(100, "(#100) Invalid parameter", "text must be {body, preview_url?}")
            if not text["body"].strip():
                return 400, wa_error(100, "(#100) Param text['body'] is required")
            if len(text["body"]) > 4096:
                return 400, wa_error(100, "(#100) Param text['body'] must be at most 4096 characters long.")
            last = self.last_customer_message.get(to.lstrip("+"))
            if last is None or datetime.now(tz=UTC) - last >= timedelta(hours=24):
                return 400, wa_error(131047, "Re-engagement message",
                                     "Message failed to send because more than 24 hours have passed since the "
                                     "customer last replied to this number.", subcode=2494010)
        elif kind == "template":
            template = body.get("template")
            if not isinstance(template, dict) or not isinstance(template.get("name"), str) or \
                    not isinstance((template.get("language") or {}).get("code"), str):
                return 400, wa_error(100, "(#100) Invalid parameter", "template needs name and language.code")
            if (template["name"], template["language"]["code"]) not in self.templates:
                return 404, wa_error(132001, "Template name does not exist in the translation",
                                     f"template name ({template['name']}) does not exist in "
                                     f"{template['language']['code']}")
            for component in template.get("components") or []:
                if component.get("type") not in ("header", "body", "button"):
                    return 400, wa_error(100, "(#100) Invalid parameter", "component type")
                for parameter in component.get("parameters") or []:
                    if parameter.get("type") != "text" or not isinstance(parameter.get("text"), str):
                        return 400, wa_error(100, "(#100) Invalid parameter", "parameter must be {type: text, text}")
                    if re.search(r"[\n\t]| {5,}", parameter["text"]):
                        return 400, wa_error(132018, "There was an issue with the parameters in your template.",
                                             "Param text cannot have new-line/tab characters or more than 4 "
                                             "consecutive spaces")
        else:
            return 400, wa_error(100, f"(#100) Param type must be one of {{text, template}} here, got {kind}")
        with self.lock:
            self.sent.append({**body, "type": kind, "phone_number_id": number})
            message_id = f"wamid.HBgL{next(self._ids):08d}"
        answer = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                  "messages": [{"id": message_id}]}
        if kind == "template":
            answer["messages"][0]["message_status"] = "accepted"
        return 200, answer


def wa_webhook(*, phone_number_id: str, messages: list[dict], name: str = "Budi", statuses: list | None = None) -> dict:
    """A webhook body as Meta sends it (Webhooks reference, ``messages`` field)."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "6281100000000", "phone_number_id": phone_number_id}}
    if messages:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": messages[0]["from"]}]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}


def wa_text(wa_id: str, text: str, message_id: str, at: datetime | None = None) -> dict:
    return {"from": wa_id, "id": message_id, "timestamp": str(int((at or datetime.now(tz=UTC)).timestamp())),
            "type": "text", "text": {"body": text}}


def wa_image(wa_id: str, message_id: str) -> dict:
    return {"from": wa_id, "id": message_id, "timestamp": str(int(time.time())), "type": "image",
            "image": {"mime_type": "image/jpeg", "sha256": "abc", "id": "1234567890"}}


# --- Telegram Bot API --------------------------------------------------------------

_TG_SEND_KEYS = {"business_connection_id", "chat_id", "message_thread_id", "direct_messages_topic_id", "text",
                 "parse_mode", "entities", "link_preview_options", "disable_notification", "protect_content",
                 "allow_paid_broadcast", "message_effect_id", "suggested_post_parameters", "reply_parameters",
                 "reply_markup"}
_TG_WEBHOOK_KEYS = {"url", "certificate", "ip_address", "max_connections", "allowed_updates",
                    "drop_pending_updates", "secret_token"}
_TG_PATH = re.compile(r"^/bot([^/]+)/(\w+)$")


def tg_error(code: int, description: str, **parameters) -> dict:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


class FakeTelegram(_FakeBase):
    """``getMe`` (GET) answers the bot's own User to its token, 401 Unauthorized to any other."""

    def __init__(self):
        super().__init__()
        self.tokens: set[str] = set()
        self.chats: set[str] = set()  # chats that exist (the customer has started the bot)
        self.blocked: set[str] = set()
        self.webhooks: dict[str, dict] = {}
        self._ids = itertools.count(100)

    def add_bot(self, token: str):
        self.tokens.add(token)

    def add_chat(self, chat_id: str | int):
        self.chats.add(str(chat_id))

    def fail_next(self, status: int, description: str, times: int = 1, **parameters):
        self.failures.extend([(status, tg_error(status, description, **parameters))] * times)

    def handle_get(self, path, headers):
        match = _TG_PATH.match(path.split("?")[0])
        if not match or match.group(2) != "getMe":
            return 404, tg_error(404, "Not Found")
        if match.group(1) not in self.tokens:
            return 401, tg_error(401, "Unauthorized")
        bot_id = int(match.group(1).split(":")[0])
        return 200, {"ok": True, "result": {"id": bot_id, "is_bot": True, "first_name": "Toko Bot",
                                            "username": f"toko_{bot_id}_bot", "can_join_groups": True,
                                            "can_read_all_group_messages": False, "supports_inline_queries": False}}

    def texts(self, to: str | None = None) -> list[str]:
        return [m["text"] for m in self.sent if to is None or str(m["chat_id"]) == str(to)]

    def handle(self, path, headers, body):
        match = _TG_PATH.match(path.split("?")[0])
        if not match:
            return 404, tg_error(404, "Not Found")
        token, method = match.groups()
        if token not in self.tokens:
            return 401, tg_error(401, "Unauthorized")
        if not headers.get("Content-Type", "").startswith("application/json") or not isinstance(body, dict):
            return 400, tg_error(400, "Bad Request: the request body must be a JSON object")
        if method == "setWebhook":
            if set(body) - _TG_WEBHOOK_KEYS or not isinstance(body.get("url"), str):
                return 400, tg_error(400, "Bad Request: bad webhook parameters")
            secret = body.get("secret_token", "")
            if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
                return 400, tg_error(400, "Bad Request: secret token contains unallowed characters")
            self.webhooks[token] = body
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}
        if method != "sendMessage":
            return 404, tg_error(404, "Not Found: method not found")
        if set(body) - _TG_SEND_KEYS:
            return 400, tg_error(400, f"Bad Request: unexpected parameter {sorted(set(body) - _TG_SEND_KEYS)[0]}")
        chat_id, text = body.get("chat_id"), body.get("text")
        if not isinstance(chat_id, (int, str)) or isinstance(chat_id, bool):
            return 400, tg_error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return 400, tg_error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return 400, tg_error(400, "Bad Request: message is too long")
        if str(chat_id) in self.blocked:
            return 403, tg_error(403, "Forbidden: bot was blocked by the user")
        if str(chat_id) not in self.chats:
            return 400, tg_error(400, "Bad Request: chat not found")
        with self.lock:
            self.sent.append(body)
            message_id = next(self._ids)
        bot_id = int(token.split(":")[0])
        return 200, {"ok": True, "result": {
            "message_id": message_id, "from": {"id": bot_id, "is_bot": True, "first_name": "Toko Bot",
                                               "username": "toko_bot"},
            "chat": {"id": int(chat_id), "first_name": "Budi", "type": "private"},
            "date": int(time.time()), "text": text}}


def tg_update(chat_id: int, text: str | None, *, update_id: int, message_id: int, first_name: str = "Budi",
              extra: dict | None = None) -> dict:
    """An Update as Telegram POSTs it to a webhook (a private chat message)."""
    message = {"message_id": message_id,
               "from": {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": "id"},
               "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
               "date": int(time.time())}
    if text is not None:
        message["text"] = text
    message.update(extra or {})
    return {"update_id": update_id, "message": message}
