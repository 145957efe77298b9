"""A tracking result told to the customer in Indonesian: courier, last status, where and
when, and the estimated arrival. Pure: no ORM, no clock, no I/O."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from tools.shipping.base import TrackingResult

MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember"]
ZONES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}
STATUS_TEXT = {
    "info_received": "data pengiriman sudah diterima kurir dan paket menunggu dijemput",
    "picked_up": "paket sudah dijemput kurir",
    "in_transit": "paket sedang dalam perjalanan",
    "out_for_delivery": "paket sedang dibawa kurir ke alamat Anda",
    "delivered": "paket sudah diterima",
    "on_hold": "paket sedang tertahan",
    "failed": "pengiriman paket gagal",
    "returning": "paket sedang dikembalikan ke pengirim",
    "returned": "paket sudah dikembalikan ke pengirim",
    "cancelled": "pengiriman dibatalkan",
    "unknown": "status paket belum bisa dipastikan",
}


def tanggal(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def waktu(moment: datetime, timezone: str = "Asia/Jakarta") -> str:
    """``24 November 2026 pukul 14.30 WIB`` (Indonesian writes 14.30, not 14:30)."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    label = ZONES.get(timezone, timezone)
    return f"{tanggal(local.date())} pukul {local:%H.%M} {label}"


def tracking_summary(result: TrackingResult, *, timezone: str = "Asia/Jakarta") -> str:
    courier = result.courier_name or result.courier.upper()
    status = STATUS_TEXT.get(result.status, STATUS_TEXT["unknown"])
    if result.status == "delivered" and result.receiver:
        status += f" oleh {result.receiver}"
    lines = [f"Paket {courier} dengan nomor resi {result.waybill}: {status}."]
    last = result.last
    if last is not None:
        where = f" di {last.location}" if last.location else ""
        when = f", {waktu(last.time, timezone)}" if last.time else ""
        lines.append(f"Update terakhir: {last.description}{where}{when}.")
    if result.status != "delivered":
        lines.append(f"Perkiraan tiba: {tanggal(result.eta)}." if result.eta
                     else "Perkiraan tiba belum tersedia dari kurir.")
    return " ".join(lines)


def tracking_payload(result: TrackingResult, *, timezone: str = "Asia/Jakarta") -> dict:
    """What the tracking tool returns to the model: the facts, and the ready summary."""
    last = result.last
    return {
        "waybill": result.waybill, "courier": result.courier, "courier_name": result.courier_name,
        "status": result.status, "provider_status": result.provider_status,
        "last_update": ({"description": last.description, "location": last.location,
                         "time": last.time.isoformat() if last.time else None} if last else None),
        "eta": result.eta.isoformat() if result.eta else None,
        "summary": tracking_summary(result, timezone=timezone),
    }
