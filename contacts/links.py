"""Rows of other apps that a contact's records point at by id: a log's ``conversation_id``.

contacts sits below conversations and must not import it (``ContactLog.conversation_id`` is a
plain integer for that reason), so the app that owns conversations registers at start how to
tell whether an id is one of the tenant's (``conversations.apps``). With none registered there
are no conversations, and every id is unknown.

Imports nothing above contacts.
"""

from __future__ import annotations

from collections.abc import Callable

from agent_project.errors import ApiError

_conversation_exists: Callable[..., bool] | None = None


def register_conversation_lookup(exists: Callable[..., bool]) -> None:
    """``exists(tenant=..., conversation_id=...)``: is that conversation the tenant's?"""
    global _conversation_exists
    _conversation_exists = exists


def conversation_owned_or_404(*, tenant, conversation_id: int) -> None:
    """``404 conversation_not_found`` for another tenant's conversation or none at all: the
    same answer for both, as ``tenants.viewsets.owned_or_404`` gives."""
    exists = _conversation_exists
    if exists is None or not exists(tenant=tenant, conversation_id=conversation_id):
        raise ApiError(404, "conversation_not_found", "No conversation with that id.")
