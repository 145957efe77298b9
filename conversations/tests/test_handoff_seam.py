"""The /chat route's handoff seam (``conversations.handoff``): channels registers its hook at
start; without one the bot answers every turn and the conversation keeps its status."""

from __future__ import annotations

from types import SimpleNamespace

from channels.handoff import chat as channels_handoff
from conversations import handoff


def test_channels_registers_its_hook_at_start():
    assert handoff._hook == (channels_handoff.chat_handoff_before, channels_handoff.chat_handoff_after)


def test_without_a_hook_the_bot_answers_and_the_status_stays(monkeypatch):
    monkeypatch.setattr(handoff, "_hook", None)
    prepared = SimpleNamespace(conversation=SimpleNamespace(status="bot"))
    assert handoff.chat_handoff_before(prepared) is None
    assert handoff.chat_handoff_after(prepared, "Maaf, saya tidak tahu. Mau saya hubungkan dengan tim kami?") == "bot"
