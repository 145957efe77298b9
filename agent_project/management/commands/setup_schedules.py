from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.models import Schedule

from agent_project.schedules import SCHEDULES


def schedule_cluster(queue: str) -> str | None:
    """The django-q2 ``cluster`` of a schedule on ``queue``: none for realtime (the default cluster runs those)."""
    return None if queue == "realtime" else settings.Q_QUEUES[queue]


class Command(BaseCommand):
    help = "Create or update every periodic django-q2 schedule by name (safe to run on every start)."

    def handle(self, *args, **options):
        for spec in SCHEDULES:
            spec = dict(spec)
            name = spec.pop("name")
            spec["cluster"] = schedule_cluster(spec.pop("queue", "realtime"))
            spec.setdefault("repeats", -1)
            _, created = Schedule.objects.update_or_create(name=name, defaults=spec)
            self.stdout.write(f"{'created' if created else 'updated'} schedule {name}")
