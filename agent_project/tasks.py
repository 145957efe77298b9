from django.conf import settings
from django.utils import timezone


def heartbeat() -> dict:
    """Runs every minute on each queue's cluster (one schedule per queue); /health reads when each last succeeded."""
    return {"queue": settings.WORKER_QUEUE, "at": timezone.now().isoformat()}
