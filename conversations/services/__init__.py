"""The chat pipeline: one customer turn in, one grounded reply out.

``chat_prepare`` does everything before the model (contact, conversation, storing the
user's turn, retrieval, opening hours, prompt); ``chat_complete`` or ``chat_stream``
calls the model and stores the reply. The user's turn is committed before the model
is called, so a failing model loses nothing: the turn is kept with ``error_code`` set
and the caller gets a 502/503 that says which provider failed.

History: if the request carries more than one message, the client owns the history
(the seed's way): it is used for the prompt as sent, and only its last turn (the new
user message) is stored, so resending the whole history never duplicates stored
turns. With a single message, the stored history of the conversation is used.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agent_project.errors import ApiError, error_body
from agent_project.lib.llm import ChatModel, ChatTurn, Completion, LLMBlocked, LLMError, Passage, get_chat_model
from contacts.models import Contact
from contacts.normalize import InvalidValue, phone_normalize
from contacts.services import WHATSAPP, contact_for_channel, contact_log_record, tenant_phone_region
from conversations import prompts, store
from conversations.bubbles import BubbleStream, limits_for, split_bubbles
from conversations.models import Conversation, Message
from knowledge.analysis import text_language
from knowledge.selectors import RELEVANCE_THRESHOLD, chunk_search
from tenants import hours
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tools.registry import result_for_model, tool_calls_run, tools_for

logger = logging.getLogger(__name__)

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


@dataclass
class ChatResult:
    prepared: PreparedChat
    message: Message
    reply: str
    bubbles: list[str]
    completion: Completion
    tool_calls: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        c = self.completion
        return {
            "conversation_id": self.prepared.conversation.pk,
            "message_id": self.message.pk,
            "reply": self.reply,
            "bubbles": self.bubbles,
            "sources": self.message.sources,
            "tool_calls": self.message.tool_calls,
            "provider": c.provider,
            "model": c.model,
            "finish_reason": c.finish_reason,
            "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                      "total_tokens": c.prompt_tokens + c.completion_tokens},
            "within_working_hours": self.prepared.opening.is_open,
            "timings_ms": self.prepared.timings,
        }


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


def _fail(prepared: PreparedChat, exc: LLMError) -> ApiError:
    """Keep the user's turn, note why it got no reply, and say so to the caller."""
    Message.objects.filter(pk=prepared.user_message.pk).update(error_code=exc.code)
    logger.warning("chat: %s failed for tenant %s: %s", exc.provider or prepared.model.provider,
                   prepared.tenant.pk, exc)
    headers = {"Retry-After": "30"} if exc.status == 503 else {}
    message = {
        "llm_timeout": "The language model did not answer in time. Your message was saved; please try again.",
        "llm_unavailable": "The language model is unavailable right now. Your message was saved; please try again.",
    }.get(exc.code, "The language model gave no usable answer. Your message was saved; please try again.")
    return ApiError(exc.status, exc.code, message, details={
        "provider": exc.provider or prepared.model.provider, "model": exc.model or prepared.model.model,
        "conversation_id": prepared.conversation.pk, "user_message_id": prepared.user_message.pk,
    }, headers=headers)


def _blocked_completion(prepared: PreparedChat, exc: LLMBlocked) -> Completion:
    logger.info("chat: provider blocked a reply for tenant %s (%s)", prepared.tenant.pk, exc.reason)
    return Completion(text=prompts.blocked_reply(prepared.locale), provider=exc.provider or prepared.model.provider,
                      model=exc.model or prepared.model.model, prompt_tokens=0, completion_tokens=0,
                      finish_reason="blocked")


def _store_reply(prepared: PreparedChat, completion: Completion, reply: str, bubbles: list[str],
                 generation_ms: float, tool_calls: list[dict] | None = None) -> ChatResult:
    t = time.perf_counter()
    tenant, conversation = prepared.tenant, prepared.conversation
    prepared.timings["generation_ms"] = generation_ms
    message = Message(
        tenant=tenant, conversation=conversation, role=Message.Role.ASSISTANT, content=reply, bubbles=bubbles,
        sources=[source_of(h) for h in prepared.hits] if completion.finish_reason != "blocked" else [],
        tool_calls=tool_calls or [],
        provider=completion.provider[:32], model=completion.model[:100], finish_reason=completion.finish_reason[:32],
        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
        retrieval_ms=prepared.timings.get("retrieval_ms"), generation_ms=generation_ms,
        total_ms=_ms(prepared.started),  # everything but the one statement that stores it
    )
    now = timezone.now()
    store.reply_turn(message=message, contact=prepared.contact, channel=prepared.channel, now=now)
    conversation.last_message_at = conversation.updated_at = now
    prepared.timings["store_reply_ms"] = _ms(t)
    prepared.timings["total_ms"] = total = _ms(prepared.started)
    # what is neither retrieval nor the model: the overhead this service adds
    prepared.timings["overhead_ms"] = round(total - prepared.timings["retrieval_ms"] - generation_ms, 3)
    return ChatResult(prepared=prepared, message=message, reply=reply, bubbles=bubbles, completion=completion,
                      tool_calls=tool_calls or [])


def _model_kwargs(prepared: PreparedChat) -> dict:
    return {"system": prepared.prompt.system, "messages": prepared.prompt.messages,
            "passages": prepared.prompt.passages, "purpose": "reply"}


def _rounds(prepared: PreparedChat, calls: list[dict], *, stream: bool) -> Iterator[str | Completion]:
    """Model → tools → model, at most ``TOOLS_MAX_ROUNDS`` rounds of calls; the last call
    offers no tools, so the model has to answer in words. Yields the reply's text as it
    comes (``stream``: as the model streams it; otherwise each call's text at once), then
    the final Completion. Text a model says before asking for a tool ("Sebentar, saya cek
    dulu ya") is part of the reply, a paragraph before what follows. Every call is
    appended to ``calls`` as it finishes (so a model failure later still leaves them on
    record). Token counts are summed over all the model calls of the turn."""
    specs = [t.spec() for t in prepared.tools]
    kwargs = _model_kwargs(prepared)
    messages = list(kwargs.pop("messages"))
    max_rounds = max(int(getattr(settings, "TOOLS_MAX_ROUNDS", 3)), 0)
    prompt_tokens = completion_tokens = 0
    said = ""
    for round_no in range(1, max_rounds + 2):
        offer = specs if round_no <= max_rounds else []
        call_kwargs = {**kwargs, "messages": messages, **({"tools": offer} if offer else {})}
        if stream:
            completion, this_round = None, ""
            for item in prepared.model.stream(**call_kwargs):
                if isinstance(item, Completion):
                    completion = item
                    break
                if not this_round:
                    item = item.lstrip()
                    if not item:
                        continue
                    if said.strip() and not said.endswith("\n\n"):
                        item = "\n\n" + item
                this_round += item
                said += item
                yield item
            if completion is None:
                raise LLMError("The stream ended without a final answer", provider=prepared.model.provider,
                               model=prepared.model.model)
        else:
            completion = prepared.model.complete(**call_kwargs)
            if completion.text.strip():
                piece = ("\n\n" if said.strip() else "") + completion.text.strip()
                said += piece
                yield piece
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        # A model may ask for a tool it was not offered (or another tenant's): the call is
        # looked up among this tenant's tools only, so it is recorded as unknown_tool, never run.
        if not completion.tool_requests or round_no > max_rounds:
            break
        if stream and this_round.strip() and not said.endswith("\n\n"):
            # What it said before asking ("Sebentar, saya cek dulu ya") is a finished paragraph:
            # the customer gets that bubble now, while the tools run.
            said += "\n\n"
            yield "\n\n"
        records = tool_calls_run(tools=prepared.tools, requests=completion.tool_requests)
        messages.append(ChatTurn("assistant", completion.text, tool_calls=completion.tool_requests,
                                 raw=completion.raw))
        for request, record in zip(completion.tool_requests, records, strict=True):
            calls.append({**record, "round": round_no})
            messages.append(ChatTurn("tool", result_for_model(record), tool_call_id=request.id, name=request.name))
    completion.prompt_tokens, completion.completion_tokens = prompt_tokens, completion_tokens
    if completion.tool_requests and not completion.text.strip():
        # still asking after the last round: the customer hears that a person will help
        piece = ("\n\n" if said.strip() else "") + prompts.no_answer_reply(prepared.locale)
        said += piece
        yield piece
        completion.finish_reason = "tool_rounds_exhausted"
    completion.text = said.strip()
    completion.tool_requests = []
    yield completion


def _complete_with_tools(prepared: PreparedChat, calls: list[dict]) -> Completion:
    """``_rounds`` without streaming: the final Completion, its text the whole reply (with no
    tools, exactly one model call, as before tools existed)."""
    return next(item for item in _rounds(prepared, calls, stream=False) if isinstance(item, Completion))


def chat_complete(prepared: PreparedChat) -> ChatResult:
    """Call the model (and the tools it asks for) and store the reply; raises
    ApiError(502/503) if the model fails. A failing *tool* is not a failure of the turn:
    the model hears the error and answers politely, and the call is stored with it."""
    t = time.perf_counter()
    calls: list[dict] = []
    try:
        completion = _complete_with_tools(prepared, calls)
    except LLMBlocked as exc:
        completion = _blocked_completion(prepared, exc)
    except LLMError as exc:
        raise _fail(prepared, exc) from exc
    generation_ms = _ms(t)
    reply = completion.text.strip()
    limits = limits_for(prepared.channel)
    bubbles = split_bubbles(reply, max_chars=limits.max_chars, max_bubbles=limits.max_bubbles)
    return _store_reply(prepared, completion, reply, bubbles, generation_ms, tool_calls=calls)


def chat_stream(prepared: PreparedChat) -> Iterator[tuple[str, dict]]:
    """``(event, data)`` pairs: ``bubble`` for each bubble as soon as it is final, then
    ``done`` with the whole answer (as ``chat_complete`` returns it), or ``error``. A client
    that goes away mid-stream leaves what it was sent stored as the reply
    (``finish_reason`` ``client_disconnected``), or, before the first bubble, the user's turn
    marked with that code."""
    limits = limits_for(prepared.channel)
    splitter = BubbleStream(max_chars=limits.max_chars, max_bubbles=limits.max_bubbles)
    sent: list[str] = []
    shown = ""  # the text of bubbles sent before a safety stop (the splitter then holds only the refusal)

    def emit(bubbles: list[str]):
        for bubble in bubbles:
            sent.append(bubble)
            yield "bubble", {"index": len(sent) - 1, "text": bubble}

    t = time.perf_counter()
    completion: Completion | None = None
    calls: list[dict] = []
    failure: dict | None = None
    try:
        try:
            # Token by token, tools or not: a tenant with tools gets its first bubble as soon as the
            # model's first paragraph is final, and the rounds of tool calls happen in between.
            for item in _rounds(prepared, calls, stream=True):
                if isinstance(item, Completion):
                    completion = item
                    break
                yield from emit(splitter.feed(item))
        except LLMBlocked as exc:
            completion = _blocked_completion(prepared, exc)
            # What the customer has not been sent of the blocked text is dropped (chat_complete drops all
            # of it): the refusal follows the bubbles already sent, within the channel's bubble cap.
            shown = "\n\n".join(sent)
            room = max(1, limits.max_bubbles - len(sent)) if limits.max_bubbles else None
            splitter = BubbleStream(max_chars=limits.max_chars, max_bubbles=room)
            yield from emit(splitter.feed(completion.text))
        except LLMError as exc:
            api_error = _fail(prepared, exc)
            failure = {**error_body(api_error.code, api_error.message, api_error.details), "status": exc.status}
        if failure is None:
            yield from emit(splitter.finish())
    except GeneratorExit:
        _disconnected(prepared, completion, sent, _ms(t), calls)
        raise
    if failure is not None:  # the turn is marked already (_fail): a client gone now changes nothing
        yield "error", failure
        return
    reply = "\n\n".join(part for part in (shown, splitter.text.strip()) if part)
    result = _store_reply(prepared, completion, reply, sent, _ms(t), tool_calls=calls)
    yield "done", result.as_dict()


def chat_abandoned(prepared: PreparedChat) -> None:
    """The streaming client went away before it was sent any of the reply: the user's turn says so
    (``error_code`` ``client_disconnected``; the same message sent again takes it up)."""
    Message.objects.filter(pk=prepared.user_message.pk).update(error_code="client_disconnected")


def _disconnected(prepared: PreparedChat, completion: Completion | None, sent: list[str], generation_ms: float,
                  calls: list[dict]) -> None:
    """The streaming client went away: the bubbles it was sent are the reply the conversation
    keeps (the customer saw them); with none sent, the user's turn is marked."""
    if not sent:
        chat_abandoned(prepared)
        return
    said = Completion(text="\n\n".join(sent), provider=prepared.model.provider, model=prepared.model.model,
                      prompt_tokens=completion.prompt_tokens if completion else 0,
                      completion_tokens=completion.completion_tokens if completion else 0,
                      finish_reason="client_disconnected")
    _store_reply(prepared, said, said.text, list(sent), generation_ms, tool_calls=calls)


def message_feedback(*, message: Message, rating: str | None, comment: str = "") -> Message:
    """Thumbs up/down on an assistant message; ``rating=None`` clears it."""
    if message.role != Message.Role.ASSISTANT:
        raise ApiError(422, "feedback_not_allowed", "Feedback can only be given on an assistant message.")
    message.feedback = rating or ""
    message.feedback_comment = comment if rating else ""
    message.feedback_at = timezone.now() if rating else None
    message.save(update_fields=["feedback", "feedback_comment", "feedback_at"])
    return message
