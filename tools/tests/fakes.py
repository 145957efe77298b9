"""Local HTTP servers on 127.0.0.1 for the tools: Biteship's tracking API and a shop's
order-status endpoint, answering with bodies shaped like their documentation. Each plays
a script of replies in order (GET and POST alike) and records every request."""

from __future__ import annotations

from agent_project.testing.fakehttp import FakeHTTPServer
from agent_project.testing.fakehttp import Request as Seen  # method, path, query, headers, body
from agent_project.testing.fakehttp import Response as Answer  # status, body, raw, headers, delay, chunked


class FakeHTTP(FakeHTTPServer):
    def __init__(self):
        super().__init__(self._answer)
        self.script: list[Answer] = []

    def play(self, *answers: Answer) -> None:
        with self.lock:
            self.script.extend(answers)

    def _answer(self, request: Seen) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else Answer(500, {"error": "no scripted answer"})


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
