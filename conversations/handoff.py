"""The /chat route's human-handoff seam.

Handing a conversation to a person (its status change, the event for the team's webhook, the
notices on WhatsApp and Telegram) is the channels app's job, and channels sits above
conversations. It registers its hook here at start (``channels.apps``); ``conversations.api``
calls the hook around the model. With none registered the bot answers every turn and the
conversation keeps its status.

Imports nothing above conversations.
"""

from __future__ import annotations

from collections.abc import Callable

Before = Callable[..., "dict | None"]
After = Callable[..., str]

_hook: tuple[Before, After] | None = None


def register_chat_handoff(*, before: Before, after: After) -> None:
    """``before(prepared)``: ``None`` when the bot should answer, else the /chat body to give
    instead. ``after(prepared, reply)``: once the reply is stored, the conversation's status."""
    global _hook
    _hook = (before, after)


def chat_handoff_before(prepared) -> dict | None:
    return _hook[0](prepared) if _hook else None


def chat_handoff_after(prepared, reply: str) -> str:
    return _hook[1](prepared, reply) if _hook else prepared.conversation.status
