"""API key material: generation, lookup prefix and hashing (pure, no ORM).

Keys look like ``sk_live_<8-char lookup><32-char secret>``. Only the first
``PREFIX_LENGTH`` characters are stored in clear (to find the row); the whole
key is stored as a SHA-256 digest. Keys carry 190+ bits of randomness, so a
fast hash is enough (a slow KDF protects low-entropy passwords, not these).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import string
from collections import Counter

KEY_PREFIX = "sk_live_"
PREFIX_LENGTH = 16
MIN_CUSTOM_KEY_LENGTH = 32
MIN_CUSTOM_KEY_BITS = 128  # estimated, see key_weakness
_ALPHABET = string.ascii_letters + string.digits


def key_generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(40))
    return KEY_PREFIX + body


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(key), stored_hash)


def key_weakness(key: str) -> str | None:
    """Why a client-chosen key is refused, or None. It must be long, printable and look
    random like the ones we generate: an estimate of its entropy (the Shannon entropy of its
    characters times its length, less what runs and repeats explain) of at least
    ``MIN_CUSTOM_KEY_BITS``. ``sk_live_aaaa…`` or ``abcdef…0123…`` are refused."""
    if len(key) < MIN_CUSTOM_KEY_LENGTH:
        return f"at least {MIN_CUSTOM_KEY_LENGTH} characters"
    if not (key.isascii() and key.isprintable()) or " " in key:
        return "printable ASCII characters without spaces"
    body = key.removeprefix(KEY_PREFIX)
    counts = Counter(body)
    per_char = -sum(n / len(body) * math.log2(n / len(body)) for n in counts.values())
    # a character one step from (or equal to) the one before it adds almost nothing
    predictable = sum(1 for a, b in zip(body, body[1:]) if abs(ord(a) - ord(b)) <= 1)
    if per_char * (len(body) - predictable) < MIN_CUSTOM_KEY_BITS:
        return "random characters (this key is too predictable: use a generated one)"
    return None
