"""What every channel adapter speaks: an inbound message parsed from a webhook, and
the result of one outbound send (sent, retry later, or never)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal["sent", "retry", "permanent"]

WHATSAPP = "whatsapp"
TELEGRAM = "telegram"
CHANNELS = (WHATSAPP, TELEGRAM)


@dataclass(frozen=True)
class InboundItem:
    """One customer message. ``external_id`` is what makes a redelivery recognisable."""

    external_id: str
    user_id: str  # where replies go: the WhatsApp wa_id or the Telegram chat id
    kind: str  # "text" or the platform's media type
    text: str
    sent_at: datetime
    name: str = ""
    phone: str | None = None  # E.164 when the channel tells us (WhatsApp does)


@dataclass(frozen=True)
class SendOutcome:
    outcome: Outcome
    detail: str = ""
    code: str = ""  # the platform's error code as text, e.g. "131047", "429"
    status_code: int | None = None
    message_id: str = ""  # wamid… / Telegram message_id when sent
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "sent"
