"""The customer intents the offline provider recognises without a model: "where is my
parcel" (a waybill number, "cek resi") and "what is my order's status". Pure: no ORM, no I/O.

Indonesian customers write "cek resi JNE 1234567890", "resi jnt JP1234567890",
"pesanan saya sudah sampai mana?", "status pesanan INV-2024-001"; the courier name
may come before or after the number, or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# courier code as the aggregators name it ← the ways customers write it
COURIERS = {
    "jne": ("jne",),
    "jnt": ("jnt", "j&t", "j & t", "jnt express", "j&t express"),
    "sicepat": ("sicepat", "si cepat"),
    "anteraja": ("anteraja", "anter aja"),
    "pos": ("pos", "pos indonesia", "pos aja"),
    "tiki": ("tiki",),
    "ninja": ("ninja", "ninja xpress", "ninja express"),
    "lion": ("lion", "lion parcel"),
    "idexpress": ("idexpress", "id express", "ide"),
    "sap": ("sap", "sap express"),
    "wahana": ("wahana",),
    "spx": ("spx", "shopee express"),
}
_ALIAS = sorted(((alias, code) for code, aliases in COURIERS.items() for alias in aliases),
                key=lambda pair: -len(pair[0]))
_COURIER_RE = re.compile(r"(?<![\w&])(" + "|".join(re.escape(a) for a, _ in _ALIAS) + r")(?![\w&])", re.IGNORECASE)
# a waybill: 8-24 letters/digits with at least 6 digits (JP1234567890, 1234567890, SPXID0123456789)
_TOKEN_RE = re.compile(r"(?<![\w-])([A-Za-z]{0,6}\d[A-Za-z0-9]{7,23})(?![\w-])")
_ORDER_RE = re.compile(r"(?:#|\b(?:order|pesanan|invoice|inv|no\.?\s*pesanan)\s*[:#]?\s*)([A-Za-z]{0,5}-?[0-9][\w-]{2,30})",
                       re.IGNORECASE)
_TRACK_WORDS = re.compile(r"\b(resi|lacak|tracking|track|waybill|awb|paket(?:nya)?|kiriman(?:nya)?)\b", re.IGNORECASE)
_WHERE_WORDS = re.compile(
    r"(sampai mana|sudah sampai|udah sampai|dimana|di mana|belum (?:sampai|datang|diterima)|kapan (?:sampai|datang|tiba)"
    r"|status (?:pesanan|order|pengiriman|paket)|cek (?:pesanan|order|status)|posisi paket)",
    re.IGNORECASE)


@dataclass(frozen=True)
class Intent:
    kind: str  # "track_shipment" | "order_status" | ""
    waybill: str = ""
    courier: str = ""
    order_id: str = ""


def courier_code(text: str) -> str:
    """The courier named in ``text`` (``"J&T"`` → ``"jnt"``), or ``""``."""
    match = _COURIER_RE.search(text or "")
    if not match:
        return ""
    wanted = match.group(1).lower()
    return next(code for alias, code in _ALIAS if alias == wanted)


def detect_intent(text: str) -> Intent:
    """What the customer wants, if it is a shipping or order-status question."""
    text = text or ""
    tracking = bool(_TRACK_WORDS.search(text))
    where = bool(_WHERE_WORDS.search(text))
    courier = courier_code(text)
    order = _ORDER_RE.search(text)
    tokens = [t for t in _TOKEN_RE.findall(text) if sum(c.isdigit() for c in t) >= 6]
    if order and order.group(1) in tokens and not (tracking or courier):
        tokens.remove(order.group(1))
    if tokens and (tracking or courier or where):
        return Intent("track_shipment", waybill=tokens[0].upper(), courier=courier)
    if order and (where or re.search(r"\b(status|cek)\b", text, re.IGNORECASE)):
        return Intent("order_status", order_id=order.group(1))
    if tracking or where:
        return Intent("track_shipment" if tracking or courier else "order_status", courier=courier)
    return Intent("")
