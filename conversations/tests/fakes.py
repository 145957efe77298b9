"""Local HTTP servers that answer like Gemini's and OpenAI's chat APIs.

Bodies follow the providers' documented shapes (Gemini ``generateContent`` /
``streamGenerateContent?alt=sse`` responses with ``candidates``, ``usageMetadata``,
``promptFeedback``, and the ``{"error": {code, message, status}}`` error body;
OpenAI ``chat.completion`` and ``chat.completion.chunk`` SSE). Our real clients (the
google-genai SDK, httpx) talk to them over HTTP on 127.0.0.1. Each server plays a
script of responses in order and records every request it received.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_project.testing.fakehttp import FakeHTTPServer, Request
from agent_project.testing.fakehttp import Response as Reply  # status, body, events (SSE), headers, delay


@dataclass
class Recorded:
    method: str
    path: str  # with the query string (``?alt=sse`` for a stream)
    headers: dict
    body: dict | None


def _recorded(request: Request) -> Recorded:
    return Recorded(request.method, request.target, request.headers, request.body)


class FakeServer(FakeHTTPServer):
    def __init__(self):
        super().__init__(self._reply)
        self.script: list[Reply] = []
        self.default: Reply | None = None
        self.on_request = None  # optional callable(Recorded), run in the server thread before answering

    @property
    def requests(self) -> list[Recorded]:
        return [_recorded(r) for r in super().requests]

    def play(self, *replies: Reply) -> None:
        with self.lock:
            self.script.extend(replies)

    def _reply(self, request: Request) -> Reply:
        with self.lock:
            reply = self.script.pop(0) if self.script else self.default
        if self.on_request is not None:
            self.on_request(_recorded(request))
        if reply is None:
            reply = Reply(500, {"error": {"code": 500, "message": "no scripted reply", "status": "INTERNAL"}})
        return reply


# --- Gemini (ai.google.dev/api/generate-content) ---------------------------------

def gemini_text(text: str, *, model: str = "gemini-2.5-flash", prompt_tokens: int = 812,
                output_tokens: int = 57, finish: str = "STOP") -> dict:
    return {
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": finish,
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
            ],
        }],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                          "totalTokenCount": prompt_tokens + output_tokens,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]},
        "modelVersion": model,
        "responseId": "mAitaJDqBq6m1dkP3pCB4Qo",
    }


def gemini_prompt_blocked() -> dict:
    return {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            ],
        },
        "usageMetadata": {"promptTokenCount": 640, "totalTokenCount": 640},
        "modelVersion": "gemini-2.5-flash",
    }


def gemini_candidate_blocked() -> dict:
    return {
        "candidates": [{
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}],
        }],
        "usageMetadata": {"promptTokenCount": 640, "totalTokenCount": 640},
        "modelVersion": "gemini-2.5-flash",
    }


def gemini_error(code: int) -> Reply:
    status, message = {
        429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        500: ("INTERNAL", "An internal error has occurred."),
        503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        403: ("PERMISSION_DENIED", "API key not valid. Please pass a valid API key."),
    }[code]
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})


def gemini_stream(pieces: list[str], *, model: str = "gemini-2.5-flash") -> Reply:
    events = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        chunk = {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0,
                                 **({"finishReason": "STOP"} if last else {})}],
                 "modelVersion": model}
        chunk["usageMetadata"] = ({"promptTokenCount": 700, "candidatesTokenCount": 42, "totalTokenCount": 742}
                                  if last else {"promptTokenCount": 700, "totalTokenCount": 700})
        events.append(chunk)
    return Reply(events=events)


# --- OpenAI-compatible (platform.openai.com/docs/api-reference/chat) --------------

def openai_completion(text: str, *, model: str = "llama3.1:8b", finish: str = "stop") -> dict:
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 519, "completion_tokens": 33, "total_tokens": 552},
        "system_fingerprint": "fp_ollama",
    }


def openai_stream(pieces: list[str], *, model: str = "llama3.1:8b") -> Reply:
    base = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1741569952, "model": model}
    events: list[dict | str] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                      "finish_reason": None}]}]
    for piece in pieces:
        events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 519, "completion_tokens": 33,
                                                    "total_tokens": 552}})
    events.append("data: [DONE]\r\n\r\n")
    return Reply(events=events)


def openai_error(code: int, retry_after: str | None = None) -> Reply:
    kind = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error", 401: "invalid_api_key"}[code]
    return Reply(code, {"error": {"message": f"fake {kind}", "type": kind, "param": None, "code": kind}},
                 headers={"Retry-After": retry_after} if retry_after else {})
