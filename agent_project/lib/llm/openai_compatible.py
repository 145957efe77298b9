"""Any OpenAI-compatible ``/chat/completions`` endpoint (Ollama, vLLM, a gateway) at
``LLM_BASE_URL``, through the one outbound HTTP seam (``agent_project.lib.http``). Tool turns
become ``tool_calls`` and ``tool`` messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import httpx
from django.core.exceptions import ImproperlyConfigured

from agent_project.lib import http
from agent_project.lib.llm.base import (ChatTurn, Completion, LLMBlocked, LLMError, LLMTimeout, LLMUnavailable, Passage,
                                        ToolRequest, ToolSpec)


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
