from django.utils import timezone


def heartbeat() -> str:
    """Runs every minute on the django-q2 cluster; /health reads when it last succeeded."""
    return timezone.now().isoformat()
