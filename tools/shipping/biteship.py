"""Biteship's public tracking API (https://biteship.com/id/docs/api/trackings):

``GET {BITESHIP_BASE_URL}/v1/trackings/{waybill_id}/couriers/{courier_code}`` with the
tenant's API key in the ``Authorization`` header. The answer carries ``status`` (confirmed,
allocated, picking_up, picked, dropping_off, delivered, on_hold, rejected, courier_not_found,
returned, return_in_transit, cancelled, disposed), ``courier.company`` and a ``history``
of ``{note, updated_at, status}`` (oldest first). Errors come as
``{"success": false, "error": "...", "code": 4000xxxx}``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from urllib.parse import quote, urlsplit

from django.utils.dateparse import parse_datetime

from tools.base import ToolFailure
from tools.http_tools import tool_fetch
from tools.shipping.base import Checkpoint, TrackingResult
from tools.shipping.mock import COURIER_NAMES

STATUS_MAP = {
    "confirmed": "info_received", "allocated": "info_received", "picking_up": "info_received",
    "picked": "picked_up", "in_transit": "in_transit", "dropping_off": "in_transit", "on_hold": "on_hold", "delivered": "delivered",
    "rejected": "failed", "courier_not_found": "failed", "returned": "returned",
    "return_in_transit": "returning", "cancelled": "cancelled", "disposed": "failed",
}
_PLACE = re.compile(r"\[([^\]]{2,60})\]")  # couriers put the scan location in brackets: "... [JAKARTA]"
MAX_BYTES = 512 * 1024


def _when(value) -> datetime | None:
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


class BiteshipTrackingProvider:
    name = "biteship"

    def __init__(self, *, api_key: str, base_url: str = "https://api.biteship.com"):
        if not api_key:
            raise ToolFailure("tool_not_configured", "the Biteship API key is not set for this shop")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")

    def track(self, *, waybill: str, courier: str, timeout: float) -> TrackingResult:
        if not courier:
            raise ToolFailure("tool_bad_arguments", "Biteship needs the courier (e.g. jne, jnt, sicepat)")
        url = f"{self.base_url}/v1/trackings/{quote(waybill, safe='')}/couriers/{quote(courier, safe='')}"
        # The same fetch as tenant tools (a deadline for the whole call, a size cap, no redirect
        # elsewhere). The base URL is the operator's setting, not a tenant's, so any address is allowed.
        fetched = tool_fetch(method="GET", url=url, allowed_host=urlsplit(self.base_url).hostname or "",
                             headers={"Authorization": self.api_key, "Accept": "application/json"},
                             timeout=timeout, max_bytes=MAX_BYTES, allow_private=True)
        try:
            data = json.loads(fetched.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = {}
        status_code = fetched.status
        if status_code in (401, 403):
            raise ToolFailure("tool_auth_error", "the courier service refused the shop's API key")
        if status_code in (400, 404) or (status_code < 300 and isinstance(data, dict) and data.get("success") is False):
            raise ToolFailure("tracking_not_found",
                              f"waybill {waybill} ({courier}) was not found: {str(data.get('error') or '')[:200]}")
        if status_code >= 300:
            raise ToolFailure("tool_http_error", f"the courier service answered {status_code}")
        if not isinstance(data, dict) or not data:
            raise ToolFailure("tool_bad_response", "the courier service did not answer with tracking JSON")
        checkpoints = []
        for entry in data.get("history") or []:
            note = str(entry.get("note") or "").strip()
            place = _PLACE.search(note)
            description = " ".join(_PLACE.sub(" ", note).split()).strip(" -,:") or note
            checkpoints.append(Checkpoint(time=_when(entry.get("updated_at")), description=description,
                                          location=place.group(1).strip().title() if place else ""))
        checkpoints.sort(key=lambda c: (c.time is None, c.time or datetime.min))
        # Order statuses are snake_case, while public waybill tracking has been seen to answer
        # camelCase ("pickingUp", "inTransit"): one spelling for both.
        raw_status = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", str(data.get("status") or "")).lower()
        company = str((data.get("courier") or {}).get("company") or courier).lower()
        return TrackingResult(
            waybill=str(data.get("waybill_id") or waybill), courier=company,
            courier_name=COURIER_NAMES.get(company, company.upper()), status=STATUS_MAP.get(raw_status, "unknown"),
            provider_status=raw_status, checkpoints=checkpoints,
            receiver=str((data.get("destination") or {}).get("contact_name") or "") if raw_status == "delivered" else "",
        )
