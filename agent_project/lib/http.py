"""The one place outbound HTTP clients are built, so every call out of the service
has a timeout, identifies itself, and retries the same way.

Adapters (LLM providers, channel senders, webhooks) take a client from here
rather than calling ``httpx`` ad hoc; tests point the adapters' base URLs at
local fake servers, so no test ever reaches the network.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable

import httpx

USER_AGENT = "Layan/1.0 (+https://github.com/layan)"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def client(*, timeout: float, base_url: str = "", headers: dict | None = None) -> httpx.Client:
    """An ``httpx.Client`` with a total timeout on connect/read/write and our User-Agent."""
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=False,
    )


def retry_after_seconds(response: httpx.Response, *, default: float, cap: float) -> float:
    """Honour ``Retry-After`` (seconds or an HTTP date) but never wait longer than ``cap``."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return min(default, cap)
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return min(default, cap)
    return min(max(when.timestamp() - time.time(), 0.0), cap)


def backoff_delays(*, attempts: int, initial: float, maximum: float) -> Iterable[float]:
    """Exponential backoff before each retry: initial, 2×initial, … capped at ``maximum``."""
    delay = initial
    for _ in range(max(attempts - 1, 0)):
        yield min(delay, maximum)
        delay *= 2
