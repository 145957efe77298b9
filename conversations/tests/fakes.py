"""Local HTTP servers that answer like Gemini's and OpenAI's chat APIs.

Bodies follow the providers' documented shapes (Gemini ``generateContent`` /
``streamGenerateContent?alt=sse`` responses with ``candidates``, ``usageMetadata``,
``promptFeedback``, and the ``{"error": {code, message, status}}`` error body;
OpenAI ``chat.completion`` and ``chat.completion.chunk`` SSE). Our real clients (the
google-genai SDK, httpx) talk to them over HTTP on 127.0.0.1. Each server plays a
script of responses in order and records every request it received.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: dict | None = None
    events: list[dict | str] | None = None  # SSE: each dict is one "data:" JSON line, a str is sent as is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (to provoke a client timeout)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: dict | None


class FakeServer:
    def __init__(self):
        self.script: list[Reply] = []
        self.default: Reply | None = None
        self.requests: list[Recorded] = []
        self.on_request = None  # optional callable(Recorded), run in the server thread before answering
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with server._lock:
                    server.requests.append(Recorded("POST", self.path, dict(self.headers), body))
                    reply = server.script.pop(0) if server.script else server.default
                if server.on_request is not None:
                    server.on_request(server.requests[-1])
                if reply is None:
                    reply = Reply(500, {"error": {"code": 500, "message": "no scripted reply", "status": "INTERNAL"}})
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self._answer(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _answer(self, reply: Reply):
                if reply.events is not None:
                    payload = b"".join(
                        (f"data: {json.dumps(e)}\r\n\r\n" if isinstance(e, dict) else e).encode()
                        for e in reply.events)
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                payload = json.dumps(reply.body or {}).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def play(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)


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
