"""The intents the offline provider recognises (pure, table-driven)."""

from __future__ import annotations

import pytest

from agent_project.lib.intents import Intent, courier_code, detect_intent


@pytest.mark.parametrize("text, intent", [
    ("cek resi JNE 1234567890", Intent("track_shipment", waybill="1234567890", courier="jne")),
    ("resi jnt JP1234567890 udah sampai mana", Intent("track_shipment", waybill="JP1234567890", courier="jnt")),
    ("Kak paket J&T saya JP1234567890 kok belum datang", Intent("track_shipment", waybill="JP1234567890",
                                                                  courier="jnt")),
    ("lacak 004512345678 sicepat", Intent("track_shipment", waybill="004512345678", courier="sicepat")),
    ("pesanan saya sudah sampai mana?", Intent("order_status")),
    ("cek resi dong", Intent("track_shipment")),
    ("status pesanan #INV-1001", Intent("order_status", order_id="INV-1001")),
    ("cek order 778812 ya kak", Intent("order_status", order_id="778812")),
    ("Berapa harga buket mawar merah?", Intent("")),
    ("Transfer ke BCA 1234567890 ya", Intent("")),  # a number alone is not a waybill
    ("Jam buka toko jam berapa?", Intent("")),
])
def test_detect_intent(text, intent):
    assert detect_intent(text) == intent


@pytest.mark.parametrize("text, code", [("J&T Express", "jnt"), ("pakai SiCepat", "sicepat"),
                                        ("ninja xpress", "ninja"), ("shopee express", "spx"), ("kurir", "")])
def test_courier_code(text, code):
    assert courier_code(text) == code
