"""Tool secrets at rest (courier API keys, tenant tool headers): Fernet from ``cryptography``.

The key comes from ``TOOLS_SECRETS_KEY`` (comma-separated Fernet keys; the first
encrypts, all decrypt, so rotating means putting the new one first) or, when unset,
is derived from ``SECRET_KEY`` with a purpose label of its own, so a development setup
needs nothing and a database dump alone reveals no tenant's keys.
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

PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(configured: str, secret_key: str) -> MultiFernet:
    keys = [k.strip() for k in configured.split(",") if k.strip()]
    if not keys:
        digest = hashlib.sha256(b"layan.tools.secrets:" + secret_key.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(getattr(settings, "TOOLS_SECRETS_KEY", "") or "", settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return PREFIX + fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise InvalidToken
    return fernet().decrypt(stored[len(PREFIX):].encode()).decode()


def mask(plain: str) -> str:
    """That a secret is set, and its last 4 characters when long enough to give nothing away."""
    if not plain:
        return ""
    return "••••" + (plain[-4:] if len(plain) >= 16 else "")


class EncryptedTextField(models.TextField):
    """A Fernet token in the column; Python sees the plain value. An unreadable token
    (the key was changed) reads as unset, so the tool reports itself unconfigured."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return decrypt(value)
        except InvalidToken:
            logger.warning("A tool secret cannot be decrypted with TOOLS_SECRETS_KEY; treating it as unset")
            return ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
