"""Tracking providers (the mock, Biteship against a fake shaped like its documented
responses) and the Indonesian customer summary (pure, table-driven)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from tools.base import ToolFailure
from tools.shipping.base import Checkpoint, TrackingResult
from tools.shipping.biteship import BiteshipTrackingProvider
from tools.shipping.mock import MockTrackingProvider
from tools.shipping.summary import tracking_summary, waktu
from tools.tests.fakes import Answer, biteship_error, biteship_tracking

JKT = ZoneInfo("Asia/Jakarta")


def result(status, **extra):
    base = {"waybill": "1234567890", "courier": "jne", "courier_name": "JNE", "status": status,
            "checkpoints": [Checkpoint(datetime(2026, 11, 24, 14, 30, tzinfo=JKT), "Tiba di hub", "Jakarta")],
            "eta": date(2026, 11, 26)}
    return TrackingResult(**{**base, **extra})


@pytest.mark.parametrize("tracking, expected", [
    (result("in_transit"),
     ("Paket JNE dengan nomor resi 1234567890: paket sedang dalam perjalanan. Update terakhir: Tiba di hub di "
     "Jakarta, 24 November 2026 pukul 14.30 WIB. Perkiraan tiba: 26 November 2026.")),
    (result("delivered", receiver="SITI", eta=None),
     ("Paket JNE dengan nomor resi 1234567890: paket sudah diterima oleh SITI. Update terakhir: Tiba di hub di "
     "Jakarta, 24 November 2026 pukul 14.30 WIB.")),
    (result("on_hold", eta=None, checkpoints=[Checkpoint(None, "Alamat tidak lengkap")]),
     ("Paket JNE dengan nomor resi 1234567890: paket sedang tertahan. Update terakhir: Alamat tidak lengkap. "
     "Perkiraan tiba belum tersedia dari kurir.")),
    (result("info_received", checkpoints=[], eta=None, courier_name="", courier="sicepat"),
     ("Paket SICEPAT dengan nomor resi 1234567890: data pengiriman sudah diterima kurir dan paket menunggu "
     "dijemput. Perkiraan tiba belum tersedia dari kurir.")),
])
def test_tracking_summary(tracking, expected):
    assert tracking_summary(tracking) == expected


def test_times_are_told_in_the_tenants_zone():
    moment = datetime(2026, 11, 24, 7, 30, tzinfo=ZoneInfo("UTC"))
    assert waktu(moment, "Asia/Jakarta") == "24 November 2026 pukul 14.30 WIB"
    assert waktu(moment, "Asia/Makassar") == "24 November 2026 pukul 15.30 WITA"
    assert waktu(moment, "Asia/Jayapura") == "24 November 2026 pukul 16.30 WIT"


@pytest.mark.parametrize("waybill, status", [
    ("1234567890", "info_received"), ("1234567891", "picked_up"), ("1234567892", "in_transit"),
    ("1234567893", "out_for_delivery"), ("1234567894", "delivered"),
])
def test_mock_provider_is_deterministic(waybill, status):
    first = MockTrackingProvider().track(waybill=waybill, courier="jne", timeout=1)
    assert first.status == status and first == MockTrackingProvider().track(waybill=waybill, courier="jne", timeout=1)
    assert (first.eta is None) == (status == "delivered")


def test_mock_provider_does_not_find_a_zero_waybill():
    with pytest.raises(ToolFailure) as missing:
        MockTrackingProvider().track(waybill="0000000000", courier="jne", timeout=1)
    assert missing.value.code == "tracking_not_found"


def test_biteship_tracking_is_parsed(courier_api):
    courier_api.play(Answer(body=biteship_tracking("JP1234567890", "jnt", "delivered")))
    tracking = BiteshipTrackingProvider(api_key="key-123", base_url=courier_api.url).track(
        waybill="JP1234567890", courier="jnt", timeout=2)
    assert (tracking.status, tracking.provider_status, tracking.courier_name) == ("delivered", "delivered",
                                                                                  "J&T Express")
    assert tracking.receiver == "Siti Rahma" and len(tracking.checkpoints) == 3
    assert tracking.last.location == "Jakarta Selatan"
    assert tracking.last.description == "RECEIVED AT INBOUND STATION"  # the place is not repeated
    assert tracking.last.time == datetime(2026, 11, 24, 14, 30, tzinfo=JKT)
    assert courier_api.requests[0].headers["Authorization"] == "key-123"


@pytest.mark.parametrize("raw, ours", [("inTransit", "in_transit"), ("pickingUp", "info_received"),
                                        ("droppingOff", "in_transit"), ("picking_up", "info_received")])
def test_biteship_status_in_either_spelling(courier_api, raw, ours):
    courier_api.play(Answer(body=biteship_tracking("JP1234567890", "jnt", raw)))
    tracking = BiteshipTrackingProvider(api_key="key-123", base_url=courier_api.url).track(
        waybill="JP1234567890", courier="jnt", timeout=2)
    assert tracking.status == ours


@pytest.mark.parametrize("answer, code", [
    (biteship_error(400), "tracking_not_found"),
    (biteship_error(404, "Not found", 40400001), "tracking_not_found"),
    (Answer(200, {"success": False, "error": "Courier not supported", "code": 40003001}), "tracking_not_found"),
    (biteship_error(401, "Authentication failed", 40000001), "tool_auth_error"),
    (Answer(500, {"success": False, "error": "Internal error"}), "tool_http_error"),
    (Answer(body=biteship_tracking(), delay=2.0), "tool_timeout"),
    (Answer(raw=b"<html>Bad gateway</html>"), "tool_bad_response"),
    (Answer(raw=b"[" + b"1," * 400_000 + b"1]"), "tool_response_too_large"),
])
def test_biteship_failures_have_stable_codes(courier_api, answer, code):
    courier_api.play(answer)
    with pytest.raises(ToolFailure) as failure:
        BiteshipTrackingProvider(api_key="key-123", base_url=courier_api.url).track(
            waybill="1234567890", courier="jne", timeout=1.0)
    assert failure.value.code == code


def test_biteship_needs_a_key_and_a_courier(courier_api):
    with pytest.raises(ToolFailure, match="API key"):
        BiteshipTrackingProvider(api_key="", base_url=courier_api.url)
    with pytest.raises(ToolFailure, match="courier"):
        BiteshipTrackingProvider(api_key="k", base_url=courier_api.url).track(waybill="1", courier="", timeout=1)
    assert courier_api.requests == []
