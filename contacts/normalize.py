"""Pure normalisation of what identifies a contact: phone numbers to E.164, e-mails to
one spelling, a tenant locale to a default phone region. No ORM, no I/O."""

from __future__ import annotations

import re

import phonenumbers

DEFAULT_REGION = "ID"  # Layan serves Indonesian businesses first

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class InvalidValue(ValueError):
    """A phone or e-mail that cannot be a real one; ``code`` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def region_for_locale(locale: str | None) -> str:
    """``id-ID`` → ``ID``, ``en_GB`` → ``GB``; a locale without a known region → Indonesia.
    A bare language is not a region (``ms`` is Malay, not Montserrat)."""
    parts = re.split(r"[-_]", (locale or "").strip())
    if len(parts) >= 2:
        part = parts[-1].upper()
        if len(part) == 2 and part in phonenumbers.SUPPORTED_REGIONS:
            return part
    return DEFAULT_REGION


def phone_normalize(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 (``+6281234567890``) or None for an empty value; raises InvalidValue otherwise.

    ``0812…`` (national), ``62812…`` (country code without the plus) and ``+62 812-…``
    are one number. phonenumbers strips a leading country code written without ``+``
    only when what remains is a valid national number, so ``62812…`` is read right.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    if re.search(r"[A-Za-z]", text):
        # phonenumbers reads letters as a keypad (1-800-FLOWERS); customers' numbers never are.
        raise InvalidValue("invalid_phone", f"'{text}' is not a phone number.")
    if text.startswith("00"):
        text = "+" + text[2:]  # international prefix written as 00
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidValue("invalid_phone", f"'{text}' is not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue("invalid_phone", f"'{text}' is not a valid phone number (region {region}).")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_normalize(raw: str | None) -> str | None:
    """Trimmed and lower-cased (``" Budi@Mail.COM "`` → ``budi@mail.com``) or None for empty.

    The local part is lower-cased too: strictly it may be case-sensitive, but no mail
    provider customers use treats it so, and two spellings must not be two contacts.
    """
    if raw is None:
        return None
    text = str(raw).strip().lower()
    if not text:
        return None
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise InvalidValue("invalid_email", f"'{text}' is not an e-mail address.")
    return text
