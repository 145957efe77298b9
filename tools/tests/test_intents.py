"""The intents the offline provider recognises (pure, table-driven)."""

from __future__ import annotations

import pytest

from agent_project.lib.intents import Intent, courier_code, detect_intent
from agent_project.lib.llm import ToolSpec, offline_tool_request


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


TRACK = ToolSpec("track_shipment", "d", {"type": "object"}, intent="track_shipment")
ORDER = ToolSpec("cek_pesanan", "d", {"type": "object", "properties": {"no": {"type": "string"}},
                                      "required": ["no"]}, intent="order_status")


@pytest.mark.parametrize("text, tools, wanted", [
    ("cek resi JNE 1234567890", [TRACK], ("track_shipment", {"waybill": "1234567890", "courier": "jne"})),
    ("cek resi JNE 1234567890", [ORDER], None),  # no tracking tool: not a tool question for this shop
    ("status pesanan #A-778", [TRACK, ORDER], ("cek_pesanan", {"no": "A-778"})),
    ("pesanan saya sudah sampai mana?", [TRACK], "ask_waybill"),
    ("pesanan saya sudah sampai mana?", [ORDER], "ask_order"),
    ("harga mawar?", [TRACK, ORDER], None),
])
def test_offline_tool_request(text, tools, wanted):
    request = offline_tool_request(question=text, tools=tools)
    if isinstance(wanted, tuple):
        assert (request.name, request.arguments) == wanted
    else:
        assert request == wanted
