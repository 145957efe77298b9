"""Ids and counts that arrive as text (query parameters, loosely typed bodies)."""

from __future__ import annotations

#: The largest value of a PostgreSQL bigint (primary keys): a larger id cannot name a row.
MAX_ID = 2**63 - 1


def parse_id(value) -> int | None:
    """``value`` as a row id (a whole number 1..MAX_ID, as text or int), or None. ``str.isdigit``
    accepted "²", which ``int`` then refused: a 500."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
    else:
        return None
    return number if 1 <= number <= MAX_ID else None


def parse_count(value: str) -> int | None:
    """``value`` as a whole number ≥ 0 (``page_size`` and the like), or None."""
    value = value.strip()
    return int(value) if value.isdecimal() and len(value) <= 18 else None
