"""Heartbeats of the task queues' clusters, as they record them, for tests that need a healthy /health."""

from __future__ import annotations

from datetime import datetime


def beat(queue: str, at: datetime) -> None:
    """A Success of the heartbeat task in the group of ``queue``'s heartbeat schedule, stopped ``at``."""
    from django_q.models import Success

    from agent_project.health import HEARTBEAT_FUNC, HEARTBEATS

    Success.objects.create(id=f"heartbeat-{queue}".ljust(32, "x")[:32], name=f"heartbeat-{queue}",
                           func=HEARTBEAT_FUNC, group=HEARTBEATS[queue], started=at, stopped=at, success=True,
                           result=None, attempt_count=1)


def all_beat(at: datetime) -> None:
    from agent_project.health import HEARTBEATS

    for queue in HEARTBEATS:
        beat(queue, at)
