"""Shipment tracking behind one small interface; a provider per aggregator, chosen per
tenant (``tools.models.ShippingConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

# our status vocabulary; each provider maps its own onto it
STATUSES = ("info_received", "picked_up", "in_transit", "out_for_delivery", "delivered", "on_hold",
            "failed", "returning", "returned", "cancelled", "unknown")


@dataclass
class Checkpoint:
    time: datetime | None
    description: str
    location: str = ""


@dataclass
class TrackingResult:
    waybill: str
    courier: str  # code, e.g. "jne"
    status: str  # one of STATUSES
    checkpoints: list[Checkpoint] = field(default_factory=list)  # oldest first
    courier_name: str = ""
    provider_status: str = ""  # the aggregator's own word, kept for the operator
    eta: date | None = None
    receiver: str = ""

    @property
    def last(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None


class TrackingProvider(Protocol):
    name: str

    def track(self, *, waybill: str, courier: str, timeout: float) -> TrackingResult:
        """Raise ``tools.base.ToolFailure`` (tracking_not_found, tool_timeout, tool_http_error,
        tool_auth_error) when there is no answer."""
        ...
