"""Secrets at rest (channel tokens, courier API keys, tenant tool headers): Fernet
(AES-128-CBC + HMAC-SHA256) from ``cryptography``, one mechanism for every app.

The key comes from ``SECRETS_ENCRYPTION_KEY``: one or more comma-separated Fernet keys;
the first encrypts, every one decrypts, so a key is rotated by putting the new one first
(a value is re-encrypted with it the next time it is saved). When unset, a key is derived
from ``SECRET_KEY`` so a development setup needs no extra variable. Either way a database
dump alone never reveals a tenant's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)

PREFIX = "fernet:"  # marks an encrypted value, so a plain one is never mistaken for a token


class SecretUnreadable(Exception):
    """The stored secret was encrypted with a key this deployment no longer has."""


def derived_key(secret_key: str) -> bytes:
    """A Fernet key from SECRET_KEY (SHA-256 with a purpose label, url-safe base64)."""
    digest = hashlib.sha256(b"layan.secrets-at-rest:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _fernet(configured: str, secret_key: str) -> MultiFernet:
    keys = [k.strip() for k in configured.split(",") if k.strip()] or [derived_key(secret_key).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(settings.SECRETS_ENCRYPTION_KEY or "", settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return PREFIX + fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise SecretUnreadable("the stored value is not an encrypted secret")
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the secret cannot be decrypted with SECRETS_ENCRYPTION_KEY") from None


def mask(plain: str) -> str:
    """What an operator may see of a secret: that it is set, and its last 4 characters
    when it is long enough that they give nothing away."""
    if not plain:
        return ""
    return "••••" + (plain[-4:] if len(plain) >= 16 else "")


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python code sees the plain value. It cannot
    be filtered on (each encryption differs), so nothing looks a row up by it."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return decrypt(value)
        except SecretUnreadable:
            # Reading a row must not crash the admin: the secret reads as unset, so whatever
            # needs it reports itself unconfigured until it is entered again.
            logger.warning("A stored secret cannot be decrypted with SECRETS_ENCRYPTION_KEY; treating it as unset")
            return ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
