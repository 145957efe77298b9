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
    {
        # CROSS-TENANT: sends every tenant's due follow-ups (followups/tasks.py)
        "name": "followups-dispatch",
        "func": "followups.tasks.dispatch_due",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        # CROSS-TENANT: re-queues (or abandons) every tenant's inbound channel messages
        # stuck processing/received after a killed worker or a lost task (channels/tasks.py)
        "name": "channels-inbound-recover",
        "func": "channels.tasks.inbound_recover",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        # CROSS-TENANT: re-queues (or gives up on) every tenant's documents whose processing task
        # was lost: a killed worker, a broker down when the upload was queued (knowledge/tasks.py)
        "name": "knowledge-documents-recover",
        "func": "knowledge.tasks.documents_recover",
        "schedule_type": Schedule.MINUTES,
        "minutes": 2,
    },
    {
        # Expired rate-limit counters of the database store (Redis expires its own).
        "name": "ratelimit-prune",
        "func": "agent_project.lib.ratelimit.ratelimit_prune",
        "schedule_type": Schedule.MINUTES,
        "minutes": 5,
    },
]
