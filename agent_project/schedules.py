"""Every periodic job of the project, declared in one place.

Each app adds its own entries here; ``manage.py setup_schedules`` creates or
updates them idempotently by name (``make run`` and the compose file run it).
An entry runs on the ``realtime`` queue's cluster unless it names another
``queue`` (settings.Q_QUEUES): a cluster runs only its own queue's schedules.
"""

from django_q.models import Schedule

HEARTBEAT_FUNC = "agent_project.tasks.heartbeat"

SCHEDULES = [
    # One heartbeat per queue: /health answers 503 when a queue's cluster has not beaten for a while.
    {
        "name": "worker-heartbeat",
        "func": HEARTBEAT_FUNC,
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        "name": "worker-heartbeat-ingest",
        "func": HEARTBEAT_FUNC,
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
        "queue": "ingest",
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
