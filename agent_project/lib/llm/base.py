"""What every chat model speaks: the turns, passages and tool calls it is given, the
``Completion`` it answers with, the errors it raises, and the ``ChatModel`` protocol.
Imports nothing of the providers, and no app.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

PURPOSES = ("reply", "followup")


@dataclass
class ToolSpec:
    """What a model is offered: a name, a description and a JSON schema of the arguments.
    ``intent`` lets the offline provider pick a tool without a model ("track_shipment",
    "order_status", or empty)."""

    name: str
    description: str
    parameters: dict
    intent: str = ""


@dataclass
class ToolRequest:
    """One call the model asked for. ``meta`` carries what the provider needs to see again
    when the result is fed back (e.g. Gemini's thought signature)."""

    id: str
    name: str
    arguments: dict
    meta: dict = field(default_factory=dict)


@dataclass
class ChatTurn:
    role: str  # "user" | "assistant" | "tool"
    content: str
    tool_calls: list[ToolRequest] = field(default_factory=list)  # on an assistant turn that asked for tools
    tool_call_id: str = ""  # on a "tool" turn: which request this answers
    name: str = ""  # on a "tool" turn: the tool's name
    raw: object = None  # the provider's own form of an assistant turn, replayed as is when present


@dataclass
class Passage:
    title: str
    text: str
    score: float
    document_id: int | None = None
    chunk_id: int | None = None
    provenance: dict = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    tool_requests: list[ToolRequest] = field(default_factory=list)
    raw: object = None  # the provider's own form of this turn (replayed with the tool results)


class LLMError(Exception):
    """The model gave no usable answer. ``status``/``code`` are what the API answers."""

    status = 502
    code = "llm_error"

    def __init__(self, message: str, *, provider: str = "", model: str = ""):
        super().__init__(message)
        self.provider = provider
        self.model = model


class LLMTimeout(LLMError):
    status = 503
    code = "llm_timeout"


class LLMUnavailable(LLMError):
    """Rate-limited or down after retries (and after the fallback model, if any)."""

    status = 503
    code = "llm_unavailable"


class LLMBlocked(LLMError):
    """The provider refused on safety grounds; callers answer politely instead."""

    status = 200
    code = "llm_blocked"

    def __init__(self, message: str, *, reason: str = "", partial_text: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.reason = reason
        self.partial_text = partial_text


class ChatModel(Protocol):
    provider: str
    model: str

    def complete(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
                 purpose: str = "reply", max_output_tokens: int | None = None,
                 temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Completion: ...

    def stream(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
               purpose: str = "reply", max_output_tokens: int | None = None,
               temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Iterator[str | Completion]: ...


def estimate_tokens(text: str) -> int:
    """A cheap, provider-independent token estimate (~4 characters per token)."""
    return (len(text) + 3) // 4


def language_of(locale: str | None) -> str:
    """``id-ID`` → ``id``; anything unknown falls back to Indonesian, the product's default."""
    lang = (locale or "id").replace("_", "-").split("-")[0].lower()
    return lang or "id"
