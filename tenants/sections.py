"""The sections other apps contribute to ``/tenants/{id}/settings``.

The tenant settings route belongs to the layer every app builds on, so it cannot import the apps
whose settings it carries (the channels' WhatsApp and Telegram credentials). Such an app registers a
``SettingsSection`` in its ``AppConfig.ready()``: the key of its section in the payload, how the
section reads out (secrets masked), and how it writes. The route shows every registered section;
the upsert writes the sections it was given inside its own transaction, so a section that refuses
its data (an ``ApiError``) leaves the tenant's other settings unchanged too.

Imports nothing above ``tenants``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SettingsSection:
    #: the section's key in the settings payload, next to the tenant's own fields
    name: str
    #: ``read(tenant=...)``: the section as the API shows it
    read: Callable[..., dict]
    #: ``write(tenant=..., data=...)``: validate ``data`` and save it, raising ``ApiError`` when a check fails
    write: Callable[..., object]
    #: what the OpenAPI schema says of the section
    help_text: str = ""


SECTIONS: dict[str, SettingsSection] = {}


def register_settings_section(section: SettingsSection) -> None:
    """Carry ``section`` in the tenant settings route from now on (called at app start)."""
    SECTIONS[section.name] = section


def settings_sections() -> list[SettingsSection]:
    return list(SECTIONS.values())
