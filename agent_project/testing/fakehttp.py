"""A local HTTP server on 127.0.0.1 for tests that fake an outside API.

Our real clients (the google-genai SDK, httpx) talk to it over HTTP. It records every
request it receives as a ``Request`` and answers each one with the ``Response`` that
the fake's own callback returns, so each fake keeps its own scripting or behaviour:

    server = FakeHTTPServer(lambda request: Response(body={"ok": True})).start()
    ...
    server.stop()

A fake may also subclass it, passing its own method as the callback, and override
``requests`` to show what came in its own record type.

A ``Response`` is sent as JSON (``body``), as is (``raw``), as server-sent events
(``events``) or chunked without a Content-Length (``chunked``), with extra headers and
after an optional ``delay``. A client that gives up mid-answer (a timeout test) is
not an error.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: str
    headers: dict
    body: object  # the parsed JSON body, or None (empty or not JSON)
    raw: bytes

    @property
    def target(self) -> str:
        """The path as the client sent it, with its query string."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class Response:
    status: int = 200
    body: object = None  # sent as JSON ({} when None)
    raw: bytes | None = None  # sent as is instead (e.g. an oversized or non-JSON answer)
    events: list[dict | str] | None = None  # SSE: each dict is one "data:" JSON line, a str is sent as is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (to provoke a client timeout)
    chunked: bool = False  # no Content-Length: the size is only known while reading


class FakeHTTPServer:
    """``respond(request) -> Response`` runs in the server's thread for each request."""

    def __init__(self, respond):
        self.respond = respond
        self._requests: list[Request] = []
        self.lock = threading.Lock()  # also for the fake's own state (its script)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real API would
            # http.server writes the head and the body separately: without TCP_NODELAY, Nagle's
            # algorithm meets the client's delayed ACK and every response stalls ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parts.query, dict(self.headers), body, raw)
                with server.lock:
                    server._requests.append(request)
                response = server.respond(request)
                if response.delay:
                    time.sleep(response.delay)
                _write(self, response)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in order."""
        with self.lock:
            return list(self._requests)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # BrokenPipe, ConnectionReset: the client gave up (a timeout test) or closed its
        # keep-alive connection; anything else is still printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _write(handler: BaseHTTPRequestHandler, response: Response) -> None:
    if response.events is not None:
        content_type = "text/event-stream"
        payload = b"".join((f"data: {json.dumps(e)}\r\n\r\n" if isinstance(e, dict) else e).encode()
                           for e in response.events)
    else:
        content_type = "application/json"
        payload = response.raw if response.raw is not None else json.dumps(
            response.body if response.body is not None else {}).encode()
    handler.send_response(response.status)
    handler.send_header("Content-Type", content_type)
    for key, value in response.headers.items():
        handler.send_header(key, value)
    if not response.chunked:
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        return
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for start in range(0, len(payload), 65536):
        piece = payload[start:start + 65536]
        handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    handler.wfile.write(b"0\r\n\r\n")
