"""A prepared turn, from the model on: model → tools → model for at most ``TOOLS_MAX_ROUNDS``
rounds, then the reply split into bubbles and stored (``chat_complete``), or streamed bubble by
bubble as the model writes (``chat_stream``). A failing model keeps the user's turn, marked with
``error_code``, and the caller gets a 502/503 that says which provider failed; a safety block
is answered with a polite refusal; a client gone mid-stream keeps what it was sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from agent_project.errors import ApiError, error_body
from agent_project.lib.llm import ChatTurn, Completion, LLMBlocked, LLMError
from conversations import prompts, store
from conversations.bubbles import BubbleStream, limits_for, split_bubbles
from conversations.models import Message
from conversations.services.prepare import PreparedChat, _ms, source_of
from tools.registry import result_for_model, tool_calls_run

logger = logging.getLogger(__name__)


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
