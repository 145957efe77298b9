"""Local HTTP servers on 127.0.0.1 for the tools: Biteship's tracking API and a shop's
order-status endpoint, answering with bodies shaped like their documentation. Each plays
a script of replies in order (GET and POST alike) and records every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int = 200
    body: dict | list | None = None
    raw: bytes | None = None  # sent as is (e.g. an oversized or non-JSON answer)
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    chunked: bool = False  # no Content-Length: the size is only known while reading


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict
    body: dict | None


class FakeHTTP:
    def __init__(self):
        self.script: list[Answer] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                parts = urlsplit(self.path)
                with server._lock:
                    server.requests.append(Seen(self.command, parts.path, parts.query, dict(self.headers), body))
                    answer = server.script.pop(0) if server.script else Answer(500, {"error": "no scripted answer"})
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.raw if answer.raw is not None else json.dumps(answer.body or {}).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    if answer.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for start in range(0, len(payload), 65536):
                            piece = payload[start:start + 65536]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout or size limit)

            do_GET = do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> FakeHTTP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def play(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)


# --- Biteship (biteship.com/id/docs/api/trackings: "Retrieve Public Tracking") -----

def biteship_tracking(waybill: str = "1234567890", courier: str = "jne", status: str = "dropping_off") -> dict:
    return {
        "success": True,
        "message": "Successfully get tracking info",
        "object": "tracking",
        "id": None,
        "waybill_id": waybill,
        "courier": {"company": courier, "driver_name": None, "driver_phone": None},
        "origin": {"contact_name": "Toko Bunga Melati", "address": "Jl. Merdeka No. 12, Bandung"},
        "destination": {"contact_name": "Siti Rahma", "address": "Jl. Kemang Raya No. 5, Jakarta Selatan"},
        "history": [
            {"note": "SHIPMENT RECEIVED BY JNE COUNTER OFFICER AT [BANDUNG]",
             "updated_at": "2026-11-23T10:15:00+07:00", "status": "picked"},
            {"note": "RECEIVED AT SORTING CENTER [BANDUNG]", "updated_at": "2026-11-23T18:40:00+07:00",
             "status": "dropping_off"},
            {"note": "RECEIVED AT INBOUND STATION [JAKARTA SELATAN]", "updated_at": "2026-11-24T14:30:00+07:00",
             "status": status},
        ],
        "link": "-",
        "order_id": None,
        "status": status,
    }


def biteship_error(code: int, message: str = "Waybill id not found", error_code: int = 40003002) -> Answer:
    return Answer(code, {"success": False, "error": message, "code": error_code})


# --- a shop's own order-status endpoint -------------------------------------------

def shop_order(order_id: str = "INV-1001", status: str = "DIKIRIM") -> dict:
    return {"data": {"order_id": order_id, "status": status, "customer": {"name": "Siti Rahma"},
                     "shipping": {"courier": "jne", "waybill": "1234567890", "eta": "2026-11-26"},
                     "items": [{"sku": "MWR-12", "qty": 1}]},
            "meta": {"request_id": "f3a1"}}
