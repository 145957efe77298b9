"""API key material: generation, lookup prefix and hashing (pure, no ORM).

Keys look like ``sk_live_<8-char lookup><32-char secret>``. Only the first
``PREFIX_LENGTH`` characters are stored in clear (to find the row); the whole
key is stored as a SHA-256 digest. Keys carry 190+ bits of randomness, so a
fast hash is enough (a slow KDF protects low-entropy passwords, not these).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

KEY_PREFIX = "sk_live_"
PREFIX_LENGTH = 16
MIN_CUSTOM_KEY_LENGTH = 32
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


def key_is_acceptable(key: str) -> bool:
    """A client-chosen key must be long and printable, like the ones we generate."""
    return len(key) >= MIN_CUSTOM_KEY_LENGTH and key.isascii() and key.isprintable() and " " not in key
