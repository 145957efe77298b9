"""A customer's turn, up to the model: the contact and conversation (made on first sight), the
user's turn stored and committed before any model is called, retrieval, opening hours, the
tenant's tools and the prompt (``chat_prepare``).

History: if the request carries more than one message, the client owns the history (the
seed's way): it is used for the prompt as sent, and only its last turn (the new user message)
is stored, so resending the whole history never duplicates stored turns. With a single
message, the stored history of the conversation is used.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agent_project.errors import ApiError
from agent_project.lib.llm import ChatModel, ChatTurn, Passage, get_chat_model
from contacts.models import Contact
from contacts.normalize import InvalidValue, phone_normalize
from contacts.services import WHATSAPP, contact_for_channel, contact_log_record, tenant_phone_region
from conversations import prompts, store
from conversations.models import Conversation, Message
from knowledge.analysis import text_language
from knowledge.selectors import RELEVANCE_THRESHOLD, chunk_search
from tenants import hours
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tools.registry import tools_for

RETRIEVAL_K = 5
SNIPPET_CHARS = 240


@contextmanager
def _chat_write():
    """One transaction for a stage's writes. By default its commit waits for the WAL flush,
    so a stored turn survives even a crash of the database host. ``CHAT_DURABLE_COMMIT=false``
    trades that for speed (``synchronous_commit = off``): rows are still committed and visible
    at once, but a host crash within ~0.6 s could lose the last turns (never corrupt anything).
    The flush wait was most of a chat turn's own cost; the choice is the operator's."""
    # Inside a caller's transaction, SET LOCAL would reach the caller's writes too: leave it alone.
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and not getattr(settings, "CHAT_DURABLE_COMMIT", True):
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


_opening_cache: dict[tuple, hours.OpeningStatus] = {}


def _opening(tenant: Tenant, now) -> hours.OpeningStatus:
    """``opening_status`` walks a year of ranges (~2 ms); its answer holds until the next
    opening or closing, so it is reused until then (keyed by the hours themselves, so an
    edit takes effect at once however it was saved)."""
    key = (tenant.pk, tenant.timezone, repr(tenant.working_hours), repr(tenant.holidays))
    cached = _opening_cache.get(key)
    if cached is not None and now >= cached.local_time:
        boundary = cached.closes_at if cached.is_open else cached.next_open
        if cached.always_open or (boundary is not None and now < boundary) or (
                boundary is None and not cached.is_open):
            return replace(cached, local_time=now.astimezone(cached.local_time.tzinfo))
    status = hours.opening_status(working_hours=tenant.working_hours, holidays=tenant.holidays,
                                  timezone=tenant.timezone, at=now)
    if len(_opening_cache) > 1000:
        _opening_cache.clear()
    _opening_cache[key] = status
    return status


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


@dataclass
class PreparedChat:
    tenant: Tenant
    conversation: Conversation
    contact: object  # contacts.Contact
    user_message: Message
    channel: str
    locale: str
    prompt: prompts.Prompt
    hits: list  # knowledge.selectors.SearchHit, relevant ones only
    candidates: list  # every hit retrieval returned, relevant or not (the playground shows them)
    opening: hours.OpeningStatus
    model: ChatModel
    started: float
    timings: dict = field(default_factory=dict)
    tools: list = field(default_factory=list)  # tools.base.Tool: what this tenant's agent may call


def conversation_for(*, tenant: Tenant, channel: str, user_id: str, contact=None) -> Conversation:
    """The conversation of this channel user, created on first sight (safe under concurrency)."""
    for _ in range(3):
        conversation = Conversation.objects.filter(tenant=tenant, channel=channel, user_id=user_id).first()
        if conversation is not None:
            if contact is not None and conversation.contact_id != contact.pk:
                conversation.contact = contact
                conversation.save(update_fields=["contact", "updated_at"])
            return conversation
        try:
            with transaction.atomic():
                return Conversation.objects.create(tenant=tenant, channel=channel, user_id=user_id, contact=contact)
        except IntegrityError:
            continue  # created by a concurrent first message: read it
    raise RuntimeError(f"conversation_for: no stable conversation for {channel}:{user_id}")


def _stored_history(conversation: Conversation) -> list[tuple[str, str]]:
    """The conversation's last turns as (role, content), oldest first."""
    rows = list(conversation.messages.exclude(content="")
                .order_by("-created_at", "-id").values_list("role", "content")[:store.HISTORY_TURNS])
    rows.reverse()
    return rows


def _passage(hit) -> Passage:
    return Passage(title=hit.title, text=hit.text, score=hit.score, document_id=hit.document_id,
                   chunk_id=hit.chunk_id, provenance=_provenance(hit.provenance))


def _provenance(value) -> dict:
    # a raw-cursor jsonb column can arrive as its text form; the API promises an object
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"raw": value}
    return value if isinstance(value, dict) else {}


def source_of(hit) -> dict:
    text = " ".join(hit.text.split())
    return {"document_id": hit.document_id, "title": hit.title, "chunk_id": hit.chunk_id,
            "snippet": text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else ""),
            "score": round(hit.score, 4), "provenance": _provenance(hit.provenance)}


def reply_locale(default: str, customer_turns: list[str]) -> str:
    """The reply's locale when the request names none: the tenant's (``default``), unless
    the customer writes clearly in the other of Indonesian and English (a tourist asking
    a Bali shop in English). The newest turn decides; one too short to tell ("ok",
    "warranty?") leaves it to the customer's earlier turns, newest first."""
    base = default.replace("_", "-").split("-")[0].lower()
    if base not in ("id", "en"):  # a Malay shop's customers write what reads as Indonesian
        return default
    for text in customer_turns[:5]:
        language = text_language(text)
        if language:
            return default if language == base else {"en": "en", "id": "id-ID"}[language]
    return default


def _known_by_phone(tenant: Tenant, channel: str, user_id: str) -> bool:
    """Whether a new WhatsApp user (the id is the number) is a contact already, imported or created by
    phone: then ``contact_for_channel`` must attach the identity to it (the one-statement first turn
    would make a second contact, not opted out). Asked only on a customer's first message."""
    if channel != WHATSAPP or not user_id.isdigit():
        return False
    try:
        phone = phone_normalize("+" + user_id, tenant_phone_region(tenant))
    except InvalidValue:
        return False
    with tenant_scope(tenant):
        return Contact.objects.filter(tenant=tenant, phone=phone).exists()


def chat_prepare(*, tenant: Tenant, user_id: str, channel: str, messages: list[ChatTurn],
                 locale: str | None = None, name: str = "") -> PreparedChat:
    """Store the user's turn and build the prompt. ``messages`` ends with the new user turn."""
    started = time.perf_counter()
    if not messages or messages[-1].role != "user" or not messages[-1].content.strip():
        raise ApiError(422, "last_message_not_user", "The last message must be the customer's (role 'user').")
    channel = channel.strip().lower() or "web"
    requested_locale = locale
    timings: dict = {}

    t = time.perf_counter()
    newest = messages[-1].content.strip()
    # Committed here, before the model is called: one statement for a returning customer
    # (conversations/store.py), else one ORM transaction that creates what is missing.
    stored = store.user_turn(tenant=tenant, channel=channel, user_id=user_id, content=newest, name=name,
                             now=timezone.now())
    if stored is None and not _known_by_phone(tenant, channel, user_id):
        first = store.first_turn(tenant=tenant, channel=channel, user_id=user_id, content=newest, name=name,
                                 now=timezone.now())
        stored = (*first, []) if first is not None else None
    if stored is not None:
        conversation, contact, user_message, stored_history = stored
    else:
        with _chat_write():
            # The conversation's row before the contact's, the order store.user_turn's statement takes them:
            # the other way round, a new customer's messages sent at once deadlocked with it (503).
            list(Conversation.objects.select_for_update().filter(channel=channel, user_id=user_id)
                 .values_list("pk", flat=True))
            contact = contact_for_channel(tenant=tenant, channel=channel, external_id=user_id, name=name)
            conversation = conversation_for(tenant=tenant, channel=channel, user_id=user_id, contact=contact)
            stored_history = _stored_history(conversation) if len(messages) == 1 else []
            latest = conversation.messages.order_by("-created_at", "-id").first()
            if (latest is not None and latest.role == Message.Role.USER and latest.error_code
                    and latest.content == newest):
                # the same message again after it got no reply: that turn is taken up (as store.user_turn does)
                Message.objects.filter(pk=latest.pk).update(error_code="")
                latest.error_code = ""
                user_message, stored_history = latest, stored_history[:-1]
                now = timezone.now()
            else:
                user_message = Message.objects.create(tenant=tenant, conversation=conversation,
                                                      role=Message.Role.USER, content=newest)
                now = user_message.created_at
                contact_log_record(tenant=tenant, contact=contact, role="user", content=newest, channel=channel,
                                   at=now, conversation_id=conversation.pk)
            Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now, updated_at=now)
            conversation.last_message_at = now
    timings["store_user_ms"] = _ms(t)

    t = time.perf_counter()
    candidates = chunk_search(tenant=tenant, query=newest, k=RETRIEVAL_K)
    hits = [h for h in candidates if h.score >= RELEVANCE_THRESHOLD]
    timings["retrieval_ms"] = _ms(t)

    t = time.perf_counter()
    history = (messages[:-1] if len(messages) > 1
               else [ChatTurn(role="user" if role == Message.Role.USER else "assistant", content=content)
                     for role, content in stored_history])
    locale = requested_locale or reply_locale(tenant.locale or "id-ID", [newest, *(
        t.content for t in reversed(history) if t.role == "user")])
    opening = _opening(tenant, timezone.now())
    tools = tools_for(tenant=tenant)
    prompt = prompts.build_prompt(
        business_name=tenant.name, persona=tenant.persona, sop=tenant.sop, opening=opening,
        passages=[_passage(h) for h in hits], history=[*history, ChatTurn("user", newest)], locale=locale,
        channel=channel, history_budget_tokens=getattr(settings, "CHAT_HISTORY_TOKEN_BUDGET", 2000),
        tool_names=[t.name for t in tools],
    )
    timings["prompt_ms"] = _ms(t)
    return PreparedChat(tenant=tenant, conversation=conversation, contact=contact, user_message=user_message,
                        channel=channel,
                        locale=locale, prompt=prompt, hits=hits[: len(prompt.passages)], candidates=candidates,
                        opening=opening, model=get_chat_model(tenant, locale=locale), started=started,
                        timings=timings, tools=tools)
