from django.core.management.base import BaseCommand
from django_q.models import Schedule

from agent_project.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Create or update every periodic django-q2 schedule by name (safe to run on every start)."

    def handle(self, *args, **options):
        for spec in SCHEDULES:
            spec = dict(spec)
            name = spec.pop("name")
            spec.setdefault("repeats", -1)
            _, created = Schedule.objects.update_or_create(name=name, defaults=spec)
            self.stdout.write(f"{'created' if created else 'updated'} schedule {name}")
