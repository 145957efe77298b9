"""Chat models behind one small interface, chosen by ``settings.LLM_PROVIDER``.

- ``gemini``: Google Gemini through the google-genai SDK (retries with backoff on
  429/5xx inside the SDK, an optional fallback model, safety blocks raised as
  :class:`LLMBlocked` so the caller can answer politely).
- ``offline``: no account needed. It composes an honest extractive answer from the
  retrieved passages it is given, and says so when nothing relevant was found.
- ``openai``: any OpenAI-compatible ``/chat/completions`` endpoint (Ollama, vLLM,
  a gateway) at ``LLM_BASE_URL``.

``passages`` are the retrieved passages. The text providers read them from
``system`` (``conversations.prompts`` renders them there, fenced as data); they
are passed separately too because the offline provider answers from them directly.

``stream()`` yields text deltas and, last, the :class:`Completion`; offered tools, it may
end with ``tool_requests`` instead of (or after some) text, as ``complete`` does.

Tools (function calling): ``complete(..., tools=[ToolSpec...])`` offers the tenant's
tools; a model that wants one answers with ``Completion.tool_requests`` instead of
text. The caller (``conversations.services``) runs them and calls ``complete`` again
with the history extended by an assistant turn carrying ``tool_calls`` and one
``role="tool"`` turn per result. Each provider translates those turns into its own
wire format (Gemini ``functionCall``/``functionResponse`` parts, OpenAI ``tool_calls``
and ``tool`` messages); the offline provider recognises the common intents itself.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent_project.lib import http
from agent_project.limits import UNSTORABLE

logger = logging.getLogger(__name__)

try:  # google-genai may talk through httpx2 (a drop-in fork) when installed
    import httpx2

    _TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    _CONNECT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the environment
    _TIMEOUTS = (httpx.TimeoutException,)
    _CONNECT_ERRORS = (httpx.TransportError,)

OFFLINE_MODEL = "offline-extractive"
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


# --- offline ------------------------------------------------------------------

_OFFLINE_TEXT = {
    "id": {
        "intro": "Berikut informasi yang saya temukan di {title}:",
        "note": "(Jawaban otomatis, dikutip langsung dari basis pengetahuan kami.)",
        "unknown": "Maaf, saya belum punya informasi tentang hal itu di basis pengetahuan kami. "
                   "Apakah Anda ingin saya hubungkan dengan tim kami?",
        "followup": "Halo! Kami ingin menindaklanjuti percakapan sebelumnya. "
                    "Apakah masih ada yang bisa kami bantu? Balas pesan ini kapan saja, ya.",
        "thanks": "Sama-sama! Kalau ada yang ingin ditanyakan lagi, kirim pesan saja, ya.",
        "greeting": "Halo! Ada yang bisa saya bantu?",
        "ack": "Baik! Ada lagi yang bisa saya bantu?",
    },
    "en": {
        "intro": "Here is what I found in {title}:",
        "note": "(Automatic answer, quoted directly from our knowledge base.)",
        "unknown": "Sorry, our knowledge base does not cover that yet. Would you like me to connect you with our team?",
        "followup": "Hello! We are following up on our earlier conversation. "
                    "Is there anything else we can help you with? Just reply to this message.",
        "thanks": "You're welcome! If there is anything else, just send a message.",
        "greeting": "Hello! How can I help you?",
        "ack": "Alright! Is there anything else I can help you with?",
    },
}
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(
    "yang dan di ke dari untuk apa apakah ada ini itu dengan atau saya kami kamu anda bisa berapa bagaimana kapan "
    "mana siapa the a an is are what how when where who can do does of to for in on and or with i you we".split()
)
_OFFLINE_MAX_CHARS = 700


# A message made only of these is a greeting or an acknowledgement ("ok kak, makasih",
# "thanks!", "halo min"), not a question: the offline answer is a polite word, not "I do not
# know, shall I connect you with our team?", which would hand the conversation to a person.
# (A yes to the assistant's offer of a person is recognised before any model is asked:
# channels.handoff.is_short_yes.)
_SMALL_TALK_WORDS = {
    "thanks": frozenset("thanks thank thx tq tks ty makasih makasi mksh kasih trims".split()),
    "greeting": frozenset("""halo hallo hai hi hello hey pagi siang sore malam selamat good morning afternoon evening
                             assalamualaikum permisi""".split()),
    "ack": frozenset("ok oke okay okey okeh sip siap baik noted mantap mantab ya yaa iya iyaa".split()),
}
_FILLER_WORDS = frozenset("""terima you so much very banyak kak kakak min mimin gan sis bro mas mbak mba pak bu ibu om
                             ka dong deh nya""".split())


def small_talk(text: str) -> str | None:
    """``"thanks"``, ``"greeting"`` or ``"ack"`` when the message is only that, else None."""
    words = _WORD.findall((text or "").lower())
    if not words or len(words) > 8:
        return None
    kinds = [next((k for k, ws in _SMALL_TALK_WORDS.items() if w in ws), None) for w in words]
    if any(k is None and w not in _FILLER_WORDS for k, w in zip(kinds, words)):
        return None
    return next((k for k in _SMALL_TALK_WORDS if k in kinds), None)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def _has(word: str, sentence: set[str]) -> bool:
    """Whether the sentence has ``word``, affixed forms included: "garansi" is in "bergaransi",
    "kirim" in "pengiriman" (words of 5 letters or more; shorter ones must match)."""
    return word in sentence or (len(word) >= 5 and any(word in t for t in sentence))


def _shared(wanted: dict[str, tuple[str, ...]], sentence: set[str]) -> int:
    """How many wanted words the sentence has, each as itself or as one of the words the
    knowledge base may use for it: "tracking" is found as "resi", "warranty" as "garansi"."""
    return sum(1 for word, others in wanted.items() if _has(word, sentence) or any(_has(o, sentence) for o in others))


def _wanted(question: str) -> dict[str, tuple[str, ...]]:
    """The question's words, each with its synonyms and translations (``knowledge.analysis``:
    the words retrieval searched the knowledge base with)."""
    from knowledge.analysis import stem, synonyms

    return {w: synonyms(stem(w)) for w in _terms(question)}


def extractive_answer(*, question: str, passages: Sequence[Passage], locale: str | None) -> str:
    """Quote the sentences of the best passages that share the most words with the question.
    Pure: no model, nothing invented, and an honest "I don't know" without passages."""
    texts = _OFFLINE_TEXT.get(language_of(locale), _OFFLINE_TEXT["id"])
    if not passages:
        return texts["unknown"]
    wanted = _wanted(question)
    candidates = []  # (score, passage rank, position, sentence)
    for rank, passage in enumerate(passages[:3]):
        title = passage.title.strip().lower()
        for pos, sentence in enumerate(s.strip() for s in _SENTENCE_END.split(passage.text)):
            # the heading line a chunk opens with is named in the intro already, and answers nothing
            if sentence and sentence.lower() != title:
                candidates.append((_shared(wanted, _terms(sentence)), rank, pos, sentence))
    best = sorted((c for c in candidates if c[0] > 0), key=lambda c: (-c[0], c[1], c[2]))[:3]
    if not best:  # relevant by retrieval score but no shared word: quote the top passage's opening
        best = [c for c in candidates if c[1] == 0][:2]
    best.sort(key=lambda c: (c[1], c[2]))  # read in document order
    quoted, used = [], 0
    for _, _, _, sentence in best:
        if quoted and used + len(sentence) > _OFFLINE_MAX_CHARS:
            break
        quoted.append(sentence)
        used += len(sentence) + 1
    title = passages[best[0][1]].title or "basis pengetahuan"
    return f"{texts['intro'].format(title=title)}\n\n{' '.join(quoted)}\n\n{texts['note']}"


_OFFLINE_TOOL_TEXT = {
    "id": {
        "ask_waybill": "Untuk mengecek status pengiriman, boleh kirimkan nomor resi beserta kurirnya? "
                       "Contohnya: JNE 1234567890.",
        "ask_order": "Untuk mengecek status pesanan, boleh kirimkan nomor pesanannya? Contohnya: #INV-12345.",
        "failed": "Maaf, saya belum bisa mengecek data itu sekarang. Silakan coba lagi sebentar lagi, "
                  "atau saya hubungkan dengan tim kami?",
        "result": "Berikut hasil pengecekan:",
    },
    "en": {
        "ask_waybill": "To check the delivery, could you send the waybill number and the courier? "
                       "For example: JNE 1234567890.",
        "ask_order": "To check your order, could you send the order number? For example: #INV-12345.",
        "failed": "Sorry, I cannot check that right now. Please try again in a moment, "
                  "or shall I connect you with our team?",
        "result": "Here is what I found:",
    },
}


def offline_tool_request(*, question: str, tools: Sequence[ToolSpec]) -> ToolRequest | str | None:
    """The tool call a recognised intent needs, ``"ask_waybill"``/``"ask_order"`` when the
    customer must first say which parcel or order, or ``None`` (not a tool question)."""
    from agent_project.lib.intents import detect_intent

    by_intent = {t.intent: t for t in reversed(tools) if t.intent}
    intent = detect_intent(question)
    if not intent.kind:
        return None
    if intent.kind == "track_shipment" and "track_shipment" in by_intent:
        if not intent.waybill:
            return "ask_waybill"
        arguments = {"waybill": intent.waybill}
        if intent.courier:
            arguments["courier"] = intent.courier
        return ToolRequest(id="offline-1", name=by_intent["track_shipment"].name, arguments=arguments)
    if intent.kind == "order_status" and "order_status" in by_intent:
        tool = by_intent["order_status"]
        if not intent.order_id:
            return "ask_order"
        required = list(tool.parameters.get("required") or tool.parameters.get("properties") or ["order_id"])
        return ToolRequest(id="offline-1", name=tool.name, arguments={required[0]: intent.order_id})
    if intent.kind == "order_status" and "track_shipment" in by_intent:
        return "ask_waybill"  # "sampai mana?" with no order tool: the waybill is what we can check
    return None


def offline_tool_answer(*, results: Sequence[ChatTurn], locale: str | None) -> str:
    """A reply made of the tools' own results: a ready customer summary when a tool gives
    one, its fields otherwise, and an apology (never a guess) when a call failed."""
    texts = _OFFLINE_TOOL_TEXT.get(language_of(locale), _OFFLINE_TOOL_TEXT["id"])
    parts = []
    for turn in results:
        try:
            payload = json.loads(turn.content)
        except ValueError:
            payload = {"result": turn.content}
        if not isinstance(payload, dict) or payload.get("error"):
            parts.append(texts["failed"])
            continue
        result = payload.get("result", payload)
        if isinstance(result, dict) and result.get("summary"):
            parts.append(str(result["summary"]))
        elif isinstance(result, dict):
            lines = [f"- {key}: {value}" for key, value in result.items() if value not in (None, "", [], {})]
            parts.append(texts["result"] + "\n" + "\n".join(lines) if lines else texts["failed"])
        else:
            parts.append(f"{texts['result']} {result}")
    return "\n\n".join(dict.fromkeys(parts)) or texts["failed"]


class OfflineChatModel:
    """Works with no account and no network: quotes the knowledge base, never invents."""

    provider = "offline"
    model = OFFLINE_MODEL

    def __init__(self, *, locale: str | None = None):
        self.locale = locale

    def complete(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
                 purpose: str = "reply", max_output_tokens: int | None = None,
                 temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Completion:
        prompt = system + "".join(t.content for t in messages)
        if purpose == "followup":
            text = _OFFLINE_TEXT.get(language_of(self.locale), _OFFLINE_TEXT["id"])["followup"]
        elif messages and messages[-1].role == "tool":
            results = []
            for turn in reversed(messages):
                if turn.role != "tool":
                    break
                results.insert(0, turn)
            text = offline_tool_answer(results=results, locale=self.locale)
        elif tools and (wanted := offline_tool_request(
                question=next((t.content for t in reversed(messages) if t.role == "user"), ""), tools=tools)):
            if isinstance(wanted, ToolRequest):
                return Completion(text="", provider=self.provider, model=self.model,
                                  prompt_tokens=estimate_tokens(prompt), completion_tokens=0,
                                  finish_reason="tool_calls", tool_requests=[wanted])
            text = _OFFLINE_TOOL_TEXT.get(language_of(self.locale), _OFFLINE_TOOL_TEXT["id"])[wanted]
        else:
            question = next((t.content for t in reversed(messages) if t.role == "user"), "")
            if kind := small_talk(question):
                text = _OFFLINE_TEXT.get(language_of(self.locale), _OFFLINE_TEXT["id"])[kind]
            else:
                text = extractive_answer(question=question, passages=passages, locale=self.locale)
        return Completion(text=text, provider=self.provider, model=self.model, prompt_tokens=estimate_tokens(prompt),
                          completion_tokens=estimate_tokens(text), finish_reason="stop")

    def stream(self, **kwargs) -> Iterator[str | Completion]:
        completion = self.complete(**kwargs)
        for piece in re.split(r"(?<=\n\n)", completion.text):  # paragraph by paragraph, like a model would
            if piece:
                yield piece
        yield completion


# --- Gemini (google-genai) ------------------------------------------------------

_BLOCK_FINISH = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY", "MODEL_ARMOR"}
_RETRY_STATUS = [408, 429, 500, 502, 503, 504]


@lru_cache(maxsize=8)
def _genai_client(api_key: str, base_url: str, timeout_ms: int, attempts: int, initial_delay: float,
                  max_delay: float):
    from google import genai
    from google.genai import types

    options = types.HttpOptions(
        base_url=base_url or None,
        timeout=timeout_ms,
        # jitter scales with the delay (the SDK's default adds up to a whole second)
        retry_options=types.HttpRetryOptions(attempts=attempts, initial_delay=initial_delay, max_delay=max_delay,
                                             jitter=initial_delay / 2, http_status_codes=_RETRY_STATUS),
    )
    return genai.Client(api_key=api_key, http_options=options)


def _enum_name(value) -> str:
    return getattr(value, "name", None) or (str(value) if value else "")


class GeminiChatModel:
    provider = "gemini"

    def __init__(self, *, api_key: str, model: str, fallback_model: str = "", base_url: str = "",
                 timeout: float = 30.0, retries: int = 2, retry_initial_delay: float = 1.0,
                 retry_max_delay: float = 8.0, temperature: float = 0.3, max_output_tokens: int = 1024):
        if not api_key:
            raise ImproperlyConfigured("LLM_PROVIDER=gemini needs GEMINI_API_KEY")
        self.model = model
        self.fallback_model = fallback_model
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self._client = _genai_client(api_key, base_url, int(timeout * 1000), retries + 1, retry_initial_delay,
                                     retry_max_delay)

    def _config(self, system: str, max_output_tokens, temperature, model: str, tools: Sequence[ToolSpec] = ()):
        from google.genai import types

        # A chat reply grounded in given passages needs no long reasoning; on 2.5 Flash,
        # thinking would spend the output budget and seconds of latency on every message.
        no_thinking = "flash" in model and model.startswith("gemini-2.5")
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=self.temperature if temperature is None else temperature,
            max_output_tokens=max_output_tokens or self.max_output_tokens,
            candidate_count=1,
            thinking_config=types.ThinkingConfig(thinking_budget=0) if no_thinking else None,
            # We run the calls ourselves (timeouts, tenant checks, recording), never the SDK.
            tools=[types.Tool(function_declarations=[
                types.FunctionDeclaration(name=t.name, description=t.description, parameters_json_schema=t.parameters)
                for t in tools])] if tools else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True) if tools else None,
        )

    @staticmethod
    def _contents(messages: list[ChatTurn]):
        from google.genai import types

        contents: list = []
        results = None  # the user turn carrying the current round's function responses
        for t in messages:
            if t.role != "tool":
                results = None
            if t.role == "tool":
                try:
                    response = json.loads(t.content)
                except ValueError:
                    response = {"result": t.content}
                if not isinstance(response, dict):
                    response = {"result": response}
                part = types.Part(function_response=types.FunctionResponse(
                    id=t.tool_call_id or None, name=t.name, response=response))
                # all results of one round go back together, in one user turn
                if results is not None:
                    results.parts.append(part)
                else:
                    results = types.Content(role="user", parts=[part])
                    contents.append(results)
            elif t.role == "assistant" and t.tool_calls:
                if isinstance(t.raw, types.Content):
                    contents.append(t.raw)  # as the model sent it, thought signatures included
                else:
                    contents.append(types.Content(role="model", parts=[
                        types.Part(function_call=types.FunctionCall(id=c.id or None, name=c.name, args=c.arguments),
                                   thought_signature=c.meta.get("thought_signature"))
                        for c in t.tool_calls]))
            else:
                contents.append(types.Content(role="model" if t.role == "assistant" else "user",
                                              parts=[types.Part(text=t.content)]))
        return contents

    @staticmethod
    def _function_calls(response, first: int = 1) -> list[ToolRequest]:
        """The response's functionCall parts; one without an id gets ``call-<n>``, counted from ``first``."""
        candidate = (response.candidates or [None])[0]
        parts = (candidate.content.parts if candidate and candidate.content and candidate.content.parts else [])
        calls = []
        for i, part in enumerate(p for p in parts if p.function_call):
            call = part.function_call
            meta = {"thought_signature": part.thought_signature} if part.thought_signature else {}
            calls.append(ToolRequest(id=call.id or f"call-{first + i}", name=call.name or "",
                                     arguments=dict(call.args or {}),
                                     meta=meta))
        return calls

    def _models(self) -> list[str]:
        return [self.model] + ([self.fallback_model] if self.fallback_model and self.fallback_model != self.model
                               else [])

    def _call(self, model: str, fn):
        """Run one SDK call (which already retried transient errors) and map its errors."""
        from google.genai import errors

        try:
            return fn()
        except errors.APIError as exc:
            if exc.code in _RETRY_STATUS:
                raise LLMUnavailable(f"Gemini answered {exc.code} {exc.status or ''}".strip(), provider=self.provider,
                                     model=model) from exc
            raise LLMError(f"Gemini refused the request: {exc.code} {exc.message or ''}".strip(),
                           provider=self.provider, model=model) from exc
        except _TIMEOUTS as exc:
            raise LLMTimeout(f"Gemini did not answer in time ({exc.__class__.__name__})", provider=self.provider,
                             model=model) from exc
        except _CONNECT_ERRORS as exc:
            raise LLMUnavailable(f"Gemini could not be reached ({exc.__class__.__name__})", provider=self.provider,
                                 model=model) from exc
        except ValueError as exc:
            # A 200 the SDK cannot read: not JSON (UnknownApiResponseError) or not its schema (pydantic's
            # ValidationError, a ValueError too). The model gave no usable answer; no retry will read it either.
            raise LLMError(f"Gemini sent an answer that could not be read ({exc.__class__.__name__})",
                           provider=self.provider, model=model) from exc

    def _with_fallback(self, attempt):
        last: LLMError | None = None
        for model in self._models():
            try:
                return attempt(model)
            except (LLMUnavailable, LLMTimeout) as exc:
                logger.warning("gemini model %s failed: %s", model, exc)
                last = exc
        assert last is not None
        raise last

    @staticmethod
    def _text_of(response) -> str:
        candidate = (response.candidates or [None])[0]
        parts = (candidate.content.parts if candidate and candidate.content and candidate.content.parts else [])
        return "".join(p.text for p in parts if p.text and not getattr(p, "thought", False))

    def _check_blocked(self, response, model: str, partial: str = "") -> None:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise LLMBlocked("Gemini blocked the prompt", reason=_enum_name(feedback.block_reason),
                             provider=self.provider, model=model, partial_text=partial)
        candidate = (response.candidates or [None])[0]
        finish = _enum_name(candidate.finish_reason) if candidate else ""
        if finish in _BLOCK_FINISH:
            raise LLMBlocked("Gemini stopped the reply", reason=finish, provider=self.provider, model=model,
                             partial_text=partial + self._text_of(response))

    def _completion(self, response, model: str, text: str) -> Completion:
        usage = response.usage_metadata
        candidate = (response.candidates or [None])[0]
        return Completion(
            text=text, provider=self.provider, model=response.model_version or model,
            prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
            completion_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0,
            finish_reason=(_enum_name(candidate.finish_reason) if candidate else "").lower() or "stop",
        )

    def complete(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
                 purpose: str = "reply", max_output_tokens: int | None = None,
                 temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Completion:
        contents = self._contents(messages)

        def attempt(model: str) -> Completion:
            config = self._config(system, max_output_tokens, temperature, model, tools)
            response = self._call(model, lambda: self._client.models.generate_content(
                model=model, contents=contents, config=config))
            self._check_blocked(response, model)
            text = self._text_of(response)
            # parsed even when none were offered: a model may still ask, and must hear "no such tool"
            calls = self._function_calls(response)
            if calls:
                completion = self._completion(response, model, text)
                completion.tool_requests = calls
                completion.raw = response.candidates[0].content
                completion.finish_reason = "tool_calls"
                return completion
            if not text.strip():
                raise LLMError("Gemini returned an empty reply", provider=self.provider, model=model)
            return self._completion(response, model, text)

        return self._with_fallback(attempt)

    def stream(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
               purpose: str = "reply", max_output_tokens: int | None = None,
               temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Iterator[str | Completion]:
        from google.genai import types

        contents = self._contents(messages)

        def open_stream(model: str):
            config = self._config(system, max_output_tokens, temperature, model, tools)
            iterator = self._call(model, lambda: iter(self._client.models.generate_content_stream(
                model=model, contents=contents, config=config)))
            # The request is sent on the first next(): fetch it here so that a 429 or a
            # timeout before any text still falls back to the next model.
            first = self._call(model, lambda: next(iterator, None))
            return model, first, iterator

        model, first, iterator = self._with_fallback(open_stream)
        text, last, calls, parts = "", None, [], []
        chunk = first
        while chunk is not None:
            self._check_blocked(chunk, model, partial=text)
            piece = self._text_of(chunk)
            if piece:
                text += piece
                yield piece
            candidate = (chunk.candidates or [None])[0]
            if candidate and candidate.content and candidate.content.parts:
                parts.extend(candidate.content.parts)
            # a functionCall part arrives whole, in one chunk (with its thought signature)
            calls.extend(self._function_calls(chunk, first=len(calls) + 1))
            last = chunk
            chunk = self._call(model, lambda: next(iterator, None))
        if last is not None and calls:
            completion = self._completion(last, model, text)
            completion.tool_requests = calls
            completion.raw = types.Content(role="model", parts=parts)  # replayed as sent, signatures included
            completion.finish_reason = "tool_calls"
            yield completion
            return
        if last is None or not text.strip():
            raise LLMError("Gemini returned an empty reply", provider=self.provider, model=model)
        yield self._completion(last, model, text)


# --- OpenAI-compatible ----------------------------------------------------------

def _content_text(content) -> str:
    """A message's ``content``: a string, or (as some servers send it) a list of parts whose
    ``text`` parts make the reply; anything else is not an answer (ValueError)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return "".join(part["text"] for part in content if isinstance(part.get("text"), str))
    raise ValueError(f"content is a {type(content).__name__}")


class OpenAICompatibleChatModel:
    """``POST {base_url}/chat/completions`` as OpenAI documents it; Ollama, vLLM and most
    gateways speak it. Retries 429/5xx with backoff, honouring ``Retry-After``."""

    provider = "openai"

    def __init__(self, *, base_url: str, model: str, api_key: str = "", timeout: float = 30.0, retries: int = 2,
                 retry_initial_delay: float = 1.0, retry_max_delay: float = 8.0, temperature: float = 0.3,
                 max_output_tokens: int = 1024, fallback_model: str = ""):
        if not base_url:
            raise ImproperlyConfigured("LLM_PROVIDER=openai needs LLM_BASE_URL (e.g. http://localhost:11434/v1)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.fallback_model = fallback_model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens

    @staticmethod
    def _message(t: ChatTurn) -> dict:
        if t.role == "tool":
            return {"role": "tool", "tool_call_id": t.tool_call_id, "content": t.content}
        if t.role == "assistant" and t.tool_calls:
            return {"role": "assistant", "content": t.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                for c in t.tool_calls]}
        return {"role": "assistant" if t.role == "assistant" else "user", "content": t.content}

    def _body(self, model, system, messages, max_output_tokens, temperature, stream: bool,
              tools: Sequence[ToolSpec] = ()) -> dict:
        body = {
            "model": model,
            "messages": [{"role": "system", "content": system}] + [self._message(t) for t in messages],
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": max_output_tokens or self.max_output_tokens,
        }
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.parameters}} for t in tools]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _send(self, client: httpx.Client, body: dict, model: str, *, stream: bool):
        """POST with retries; returns an open response (the caller closes it)."""
        delays = list(http.backoff_delays(attempts=self.retries + 1, initial=self.retry_initial_delay,
                                          maximum=self.retry_max_delay))
        for attempt in range(self.retries + 1):
            try:
                request = client.build_request("POST", "/chat/completions", json=body)
                response = client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if attempt < self.retries:
                    time.sleep(delays[attempt])
                    continue
                raise LLMTimeout("The model server did not answer in time", provider=self.provider,
                                 model=model) from exc
            except httpx.TransportError as exc:
                if attempt < self.retries:
                    time.sleep(delays[attempt])
                    continue
                raise LLMUnavailable(f"The model server could not be reached ({exc.__class__.__name__})",
                                     provider=self.provider, model=model) from exc
            if response.status_code < 400:
                return response
            if stream:
                response.read()
            response.close()
            if response.status_code in http.RETRYABLE_STATUS:
                if attempt < self.retries:
                    time.sleep(http.retry_after_seconds(response, default=delays[attempt], cap=self.retry_max_delay))
                    continue
                raise LLMUnavailable(f"The model server answered {response.status_code}", provider=self.provider,
                                     model=model)
            raise LLMError(f"The model server refused the request: {response.status_code} {response.text[:200]}",
                           provider=self.provider, model=model)
        raise AssertionError("unreachable")

    def _client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return http.client(timeout=self.timeout, base_url=self.base_url, headers=headers)

    def _models(self) -> list[str]:
        return [self.model] + ([self.fallback_model] if self.fallback_model and self.fallback_model != self.model
                               else [])

    def complete(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
                 purpose: str = "reply", max_output_tokens: int | None = None,
                 temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Completion:
        last: LLMError | None = None
        with self._client() as client:
            for model in self._models():
                body = self._body(model, system, messages, max_output_tokens, temperature, stream=False, tools=tools)
                try:
                    response = self._send(client, body, model, stream=False)
                except (LLMUnavailable, LLMTimeout) as exc:
                    last = exc
                    continue
                return self._parse(response, model)
        assert last is not None
        raise last

    def _parse(self, response: httpx.Response, model: str) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = _content_text(choice["message"].get("content"))
            calls = [ToolRequest(id=c.get("id") or f"call-{i + 1}", name=c["function"]["name"],
                                 arguments=_json_arguments(c["function"].get("arguments")))
                     for i, c in enumerate(choice["message"].get("tool_calls") or [])]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError("The model server sent an unexpected answer", provider=self.provider, model=model) from exc
        finish = choice.get("finish_reason") or "stop"
        usage = data.get("usage") or {}
        if calls:
            return Completion(text=text, provider=self.provider, model=data.get("model") or model,
                              prompt_tokens=int(usage.get("prompt_tokens") or 0),
                              completion_tokens=int(usage.get("completion_tokens") or 0), finish_reason="tool_calls",
                              tool_requests=calls)
        if finish == "content_filter":
            raise LLMBlocked("The model server filtered the reply", reason=finish, provider=self.provider, model=model,
                             partial_text=text)
        if not text.strip():
            raise LLMError("The model server returned an empty reply", provider=self.provider, model=model)
        return Completion(text=text, provider=self.provider, model=data.get("model") or model,
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), finish_reason=finish)

    def stream(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
               purpose: str = "reply", max_output_tokens: int | None = None,
               temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Iterator[str | Completion]:
        with self._client() as client:
            response, model, last = None, self.model, None
            for model in self._models():
                body = self._body(model, system, messages, max_output_tokens, temperature, stream=True, tools=tools)
                try:
                    response = self._send(client, body, model, stream=True)
                    break
                except (LLMUnavailable, LLMTimeout) as exc:
                    last = exc
            if response is None:
                assert last is not None
                raise last
            text, finish, usage, served_model = "", "stop", {}, model
            calls: dict[int, dict] = {}  # tool calls by index, their arguments arriving in fragments
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        event = json.loads(payload)
                    except ValueError as exc:
                        raise LLMError("The model server sent a malformed stream", provider=self.provider,
                                       model=model) from exc
                    served_model = event.get("model") or served_model
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        piece = _content_text(delta.get("content"))
                        if piece:
                            text += piece
                            yield piece
                        for fragment in delta.get("tool_calls") or []:
                            call = calls.setdefault(int(fragment.get("index") or 0),
                                                    {"id": "", "name": "", "arguments": ""})
                            function = fragment.get("function") or {}
                            call["id"] = fragment.get("id") or call["id"]
                            call["name"] += function.get("name") or ""
                            arguments = function.get("arguments")  # a string fragment; some servers send an object
                            if arguments is not None:
                                call["arguments"] += arguments if isinstance(arguments, str) else json.dumps(arguments)
                        finish = choice.get("finish_reason") or finish
            except httpx.TimeoutException as exc:
                raise LLMTimeout("The model server stopped streaming", provider=self.provider, model=model) from exc
            except (ValueError, TypeError) as exc:
                raise LLMError("The model server sent a malformed stream", provider=self.provider, model=model) from exc
            finally:
                response.close()
        if calls:
            yield Completion(text=text, provider=self.provider, model=served_model,
                             prompt_tokens=int(usage.get("prompt_tokens") or 0),
                             completion_tokens=int(usage.get("completion_tokens") or 0), finish_reason="tool_calls",
                             tool_requests=[ToolRequest(id=c["id"] or f"call-{i + 1}", name=c["name"],
                                                        arguments=_json_arguments(c["arguments"]))
                                            for i, (_, c) in enumerate(sorted(calls.items()))])
            return
        if finish == "content_filter":
            raise LLMBlocked("The model server filtered the reply", reason=finish, provider=self.provider, model=model,
                             partial_text=text)
        if not text.strip():
            raise LLMError("The model server returned an empty reply", provider=self.provider, model=model)
        yield Completion(text=text, provider=self.provider, model=served_model,
                         prompt_tokens=int(usage.get("prompt_tokens") or 0),
                         completion_tokens=int(usage.get("completion_tokens") or 0), finish_reason=finish)


def _json_arguments(value) -> dict:
    """OpenAI sends arguments as a JSON string (some servers send an object); a model may
    also send broken JSON, which then reaches the tool as no arguments (it answers why)."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except ValueError:
        return {"_unparsed": str(value)[:500]}
    return parsed if isinstance(parsed, dict) else {"_unparsed": str(value)[:500]}


# --- registry -------------------------------------------------------------------

def _common() -> dict:
    return {
        "timeout": settings.LLM_TIMEOUT_SECONDS,
        "retries": getattr(settings, "LLM_MAX_RETRIES", 2),
        "retry_initial_delay": getattr(settings, "LLM_RETRY_INITIAL_DELAY", 1.0),
        "retry_max_delay": getattr(settings, "LLM_RETRY_MAX_DELAY", 8.0),
        "temperature": getattr(settings, "LLM_TEMPERATURE", 0.3),
        "max_output_tokens": getattr(settings, "LLM_MAX_OUTPUT_TOKENS", 1024),
    }


def _gemini(tenant) -> ChatModel:
    return GeminiChatModel(api_key=settings.GEMINI_API_KEY, model=settings.LLM_MODEL,
                           fallback_model=settings.LLM_FALLBACK_MODEL, base_url=settings.GEMINI_BASE_URL, **_common())


def _offline(tenant) -> ChatModel:
    return OfflineChatModel(locale=getattr(tenant, "locale", None))


def _openai(tenant) -> ChatModel:
    return OpenAICompatibleChatModel(base_url=settings.LLM_BASE_URL, model=settings.LLM_MODEL,
                                     api_key=settings.LLM_API_KEY, fallback_model=settings.LLM_FALLBACK_MODEL,
                                     **_common())


PROVIDERS = {"gemini": _gemini, "offline": _offline, "openai": _openai}


def get_chat_model(tenant=None, *, locale: str | None = None) -> ChatModel:
    """The configured chat model. ``tenant`` (and ``locale``, which wins) set the
    offline provider's language; the others take the language from the prompt."""
    name = settings.LLM_PROVIDER
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise ImproperlyConfigured(f"LLM_PROVIDER={name!r}; choose one of {', '.join(PROVIDERS)}") from None
    model = factory(tenant)
    if locale and isinstance(model, OfflineChatModel):
        model.locale = locale
    return ObservedChatModel(model)


class ObservedChatModel:
    """Every provider's calls counted and timed in the Prometheus metrics
    (``layan_llm_*``), in one place instead of in each provider; anything else is
    the wrapped model's."""

    def __init__(self, inner: ChatModel):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _observe(self, started: float, outcome: str, result: Completion | None = None) -> None:
        from agent_project import metrics

        metrics.llm_call_observe(
            provider=self._inner.provider, model=(result.model if result else None) or self._inner.model,
            seconds=time.perf_counter() - started, outcome=outcome,
            prompt_tokens=result.prompt_tokens if result else 0,
            completion_tokens=result.completion_tokens if result else 0,
        )

    def complete(self, **kwargs) -> Completion:
        started = time.perf_counter()
        try:
            result = self._inner.complete(**kwargs)
        except LLMError as exc:
            self._observe(started, exc.__class__.__name__.removeprefix("LLM").lower() or "error")
            raise
        self._observe(started, "ok", result)
        return _storable_completion(result)

    def stream(self, **kwargs) -> Iterator[str | Completion]:
        started = time.perf_counter()
        try:
            for item in self._inner.stream(**kwargs):
                if isinstance(item, Completion):
                    self._observe(started, "ok", item)
                    item = _storable_completion(item)
                else:
                    item = storable_text(item)
                yield item
        except LLMError as exc:
            self._observe(started, exc.__class__.__name__.removeprefix("LLM").lower() or "error")
            raise


def storable_text(text: str) -> str:
    """The model's text without what PostgreSQL cannot store: NUL and unpaired surrogates (half of
    an emoji a provider split). Either had made the reply's INSERT fail after the model answered."""
    return UNSTORABLE.sub("", text) if text else text  # the pattern the request limits refuse in bodies


def _storable_completion(completion: Completion) -> Completion:
    """The completion as a message row can hold it: storable text and model name, token counts
    of at least 0 (a provider's odd negative count broke the row's check after a good reply)."""
    completion.text = storable_text(completion.text)
    completion.model = storable_text(completion.model or "")
    completion.prompt_tokens = max(0, int(completion.prompt_tokens or 0))
    completion.completion_tokens = max(0, int(completion.completion_tokens or 0))
    return completion


def model_label() -> dict:
    """What ``/health`` reports: the provider and the model name it will use."""
    name = settings.LLM_PROVIDER
    if name == "offline":
        return {"provider": "offline", "model": OFFLINE_MODEL,
                "note": "extractive answers from the knowledge base; no generative model configured"}
    label = {"provider": name, "model": settings.LLM_MODEL}
    if settings.LLM_FALLBACK_MODEL:
        label["fallback_model"] = settings.LLM_FALLBACK_MODEL
    if name == "openai":
        label["base_url"] = settings.LLM_BASE_URL
    return label
