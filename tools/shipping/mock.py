"""Deterministic tracking for development and demos (the seed's mock, kept): the same
waybill always gives the same journey, so a demo script and a test can rely on it.

The stage is the digit sum of the waybill modulo 5 (``1234567890`` → 45 → stage 0 …
use ``1234567891`` for stage 1, and so on); a waybill of only zeros is "not found".
Times count back from a fixed reference day, not from the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tools.base import ToolFailure
from tools.shipping.base import Checkpoint, TrackingResult

COURIER_NAMES = {"jne": "JNE", "jnt": "J&T Express", "sicepat": "SiCepat", "anteraja": "AnterAja",
                 "pos": "Pos Indonesia", "tiki": "TIKI", "ninja": "Ninja Xpress", "lion": "Lion Parcel",
                 "idexpress": "ID Express", "sap": "SAP Express", "wahana": "Wahana", "spx": "SPX Express"}
_JOURNEY = [  # (status, description, location, hours after the first scan)
    ("info_received", "Data pengiriman diterima, menunggu penjemputan", "Bandung", 0),
    ("picked_up", "Paket dijemput kurir", "Bandung", 5),
    ("in_transit", "Paket tiba di hub transit", "Jakarta", 20),
    ("out_for_delivery", "Paket dibawa kurir menuju alamat penerima", "Jakarta Selatan", 38),
    ("delivered", "Paket diterima oleh yang bersangkutan (BUDI)", "Jakarta Selatan", 41),
]
REFERENCE_DAY = datetime(2026, 11, 20, 9, 0, tzinfo=ZoneInfo("Asia/Jakarta"))


class MockTrackingProvider:
    name = "mock"

    def track(self, *, waybill: str, courier: str, timeout: float) -> TrackingResult:
        digits = [int(c) for c in waybill if c.isdigit()]
        if not digits or not any(digits):
            raise ToolFailure("tracking_not_found", f"waybill {waybill} was not found")
        stage = sum(digits) % len(_JOURNEY)
        courier = courier or "jne"
        start = REFERENCE_DAY + timedelta(hours=sum(digits) % 24)
        checkpoints = [Checkpoint(time=start + timedelta(hours=h), description=d, location=loc)
                       for _, d, loc, h in _JOURNEY[: stage + 1]]
        status = _JOURNEY[stage][0]
        eta = None if status == "delivered" else (start + timedelta(days=2)).date()
        return TrackingResult(waybill=waybill, courier=courier, courier_name=COURIER_NAMES.get(courier, courier.upper()),
                              status=status, provider_status=status, checkpoints=checkpoints, eta=eta,
                              receiver="BUDI" if status == "delivered" else "")
