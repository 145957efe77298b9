"""Every periodic job of the project, declared in one place.

Each app adds its own entries here; ``manage.py setup_schedules`` creates or
updates them idempotently by name (``make run`` and the compose file run it).
"""

from django_q.models import Schedule

SCHEDULES = [
    {
        "name": "worker-heartbeat",
        "func": "agent_project.tasks.heartbeat",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
]
