"""Google Gemini through the google-genai SDK: the SDK retries 429/5xx with backoff, then an
optional fallback model is tried; safety blocks are raised as ``LLMBlocked`` so the caller can
answer politely. Tool turns become ``functionCall``/``functionResponse`` parts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from functools import lru_cache

import httpx
from django.core.exceptions import ImproperlyConfigured

from agent_project.lib.llm.base import (ChatTurn, Completion, LLMBlocked, LLMError, LLMTimeout, LLMUnavailable, Passage,
                                        ToolRequest, ToolSpec)

logger = logging.getLogger(__name__)

try:  # google-genai may talk through httpx2 (a drop-in fork) when installed
    import httpx2

    _TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    _CONNECT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the environment
    _TIMEOUTS = (httpx.TimeoutException,)
    _CONNECT_ERRORS = (httpx.TransportError,)

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
