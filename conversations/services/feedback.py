"""Ratings of the assistant's answers (thumbs up or down, with a comment)."""

from __future__ import annotations

from django.utils import timezone

from agent_project.errors import ApiError
from conversations.models import Message


def message_feedback(*, message: Message, rating: str | None, comment: str = "") -> Message:
    """Thumbs up/down on an assistant message; ``rating=None`` clears it."""
    if message.role != Message.Role.ASSISTANT:
        raise ApiError(422, "feedback_not_allowed", "Feedback can only be given on an assistant message.")
    message.feedback = rating or ""
    message.feedback_comment = comment if rating else ""
    message.feedback_at = timezone.now() if rating else None
    message.save(update_fields=["feedback", "feedback_comment", "feedback_at"])
    return message
