"""Follow-ups: how many are dispatched per second to a local webhook receiver with 1, 2
and 4 django-q2 worker processes, and how long after ``scheduled_at`` they arrive when
the real schedule (a tick every minute) drives the dispatcher.

    python benchmarks/bench_followups.py [--count 2000] [--workers 1,2,4] [--delay-count 300] [--spread 150]
    make bench BENCH_ARGS=followups

Runs against the benchmark database (var/pg-bench unless EMBEDDED_PG_DIR says otherwise)
in its own tenant, ``bench-followups``, emptied first and removed at the end. Workers are
real ``manage.py qcluster`` processes on a queue of their own; the receiver is a threaded
``http.server`` in this process checking every signature. The machine is shared (2 cores):
the receiver, PostgreSQL and the workers all compete for them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANT_ID = "bench-followups"


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("EMBEDDED_PG_DIR", str(ROOT / "var" / "pg-bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_project.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Our own queue (and signing salt), shared with the worker processes we start.
    os.environ.setdefault("Q_CLUSTER_NAME", f"bench-followups-{os.getpid()}")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    import logging

    logging.getLogger("django-q").setLevel(logging.WARNING)
    from django.core.management import call_command

    # Only what this benchmark touches, so another app's pending migration cannot stop it.
    for app in ("django_q", "followups"):
        call_command("migrate", app, verbosity=0)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _tenant(receiver):
    from django_scopes import scopes_disabled

    from contacts.models import Contact
    from followups.models import FollowUp
    from tenants.models import Tenant

    with scopes_disabled():
        FollowUp.objects.filter(tenant_id=TENANT_ID).delete()
    Tenant.objects.filter(pk=TENANT_ID).delete()
    tenant = Tenant.objects.create(id=TENANT_ID, name="Bench Follow-ups", webhook_url=receiver.url)
    receiver.secret = tenant.webhook_secret
    with scopes_disabled():
        contact = Contact.objects.create(tenant=tenant, name="Budi Santoso", phone="+6281234567890")
    return tenant, contact


def _create(tenant, contact, times: list[datetime]) -> None:
    from django_scopes import scopes_disabled

    from followups.models import FollowUp

    rows = [FollowUp(tenant=tenant, contact=contact, channel="webhook", message="Halo {first_name}, pesanan siap.",
                     scheduled_at=t, next_attempt_at=t) for t in times]
    with scopes_disabled():
        FollowUp.objects.bulk_create(rows, batch_size=1000)


def _sent() -> int:
    from django_scopes import scopes_disabled

    from followups.models import FollowUp

    with scopes_disabled():
        return FollowUp.objects.filter(tenant_id=TENANT_ID, status="sent").count()


def _clear(receiver) -> None:
    from django_scopes import scopes_disabled

    from followups.models import FollowUp

    with scopes_disabled():
        FollowUp.objects.filter(tenant_id=TENANT_ID).delete()
    with receiver.lock:
        receiver.deliveries.clear()


def throughput(tenant, contact, receiver, *, workers: int, count: int, batch: int) -> dict:
    from django.utils import timezone

    from followups.tests.support import Cluster, enqueue, wait_clusters_ready, wait_for

    _clear(receiver)
    now = timezone.now()
    _create(tenant, contact, [now - timedelta(seconds=1)] * count)
    cluster = Cluster(label=f"rate-{workers}", workers=workers,
                      env={"FOLLOWUP_BATCH_SIZE": str(batch), "FOLLOWUP_DISPATCH_WINDOW_SECONDS": "600"})
    try:
        wait_clusters_ready([cluster])
        t0 = time.monotonic()
        for _ in range(workers):
            enqueue("followups.tasks.dispatch_drain")
        wait_for(lambda: _sent() == count, timeout=900, interval=0.2, clusters=[cluster],
                 what=f"{count} follow-ups sent")
        elapsed = time.monotonic() - t0
    finally:
        cluster.stop()
    with receiver.lock:
        received = [d.received_at for d in receiver.deliveries]
        keys = {d.key for d in receiver.deliveries}
        bad = sum(1 for d in receiver.deliveries if not d.signature_ok)
    span = max(received) - min(received)
    return {"workers": workers, "sent": count, "received": len(received), "duplicates": len(received) - len(keys),
            "bad_signatures": bad, "wall_s": elapsed, "rate": count / elapsed, "receiver_rate": count / span}


def delay(tenant, contact, receiver, *, workers: int, count: int, spread: float) -> dict:
    """Follow-ups due at random moments over ``spread`` seconds, sent by the real schedule."""
    from django.core.management import call_command
    from django.utils import timezone
    from django_q.models import Schedule, Task

    from followups.tests.support import Cluster, wait_for

    _clear(receiver)
    cluster = Cluster(label="delay", workers=workers)
    call_command("setup_schedules", verbosity=0)
    schedule = Schedule.objects.get(name="followups-dispatch")
    original = (schedule.cluster, schedule.next_run)
    try:
        Schedule.objects.filter(pk=schedule.pk).update(cluster=cluster.queue, next_run=timezone.now())
        # steady state first: wait for the cluster's first tick, then schedule the follow-ups
        wait_for(lambda: Task.objects.filter(func="followups.tasks.dispatch_due",
                                             started__gte=timezone.now() - timedelta(minutes=5)).exists(),
                 timeout=180, interval=0.5, clusters=[cluster], what="the first tick")
        now = timezone.now()
        due = sorted(now + timedelta(seconds=random.uniform(5, 5 + spread)) for _ in range(count))
        _create(tenant, contact, due)
        wait_for(lambda: _sent() == count, timeout=spread + 300, interval=1, clusters=[cluster],
                 what="the scheduled follow-ups")
    finally:
        cluster.stop()
        Schedule.objects.filter(pk=schedule.pk).update(cluster=original[0], next_run=original[1])
    with receiver.lock:
        delays = [d.received_at - datetime.fromisoformat(d.payload["scheduled_at"]).timestamp()
                  for d in receiver.deliveries]
    return {"count": len(delays), "p50": _p(delays, 0.5), "p95": _p(delays, 0.95), "max": max(delays),
            "mean": statistics.fmean(delays)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="follow-ups per throughput run")
    parser.add_argument("--workers", default="1,2,4", help="worker processes per run, comma-separated")
    parser.add_argument("--batch", type=int, default=20, help="FOLLOWUP_BATCH_SIZE")
    parser.add_argument("--delay-count", type=int, default=300, help="follow-ups in the delay run (0: skip it)")
    parser.add_argument("--spread", type=float, default=150, help="seconds over which they come due")
    args, _ = parser.parse_known_args(argv)  # run_all.py leaves its own arguments in sys.argv
    _setup()
    from followups.tests.support import start_receiver, stop_server

    receiver = start_receiver(secret="")
    tenant, contact = _tenant(receiver)
    try:
        rows = [throughput(tenant, contact, receiver, workers=int(w), count=args.count, batch=args.batch)
                for w in args.workers.split(",")]
        print(f"\nDispatch rate, {args.count} due follow-ups, batches of {args.batch}, local signed webhook")
        print(f"{'workers':>7} {'sent':>6} {'dupes':>5} {'bad sig':>7} {'wall s':>7} {'per s':>7} {'at receiver/s':>13}")
        for r in rows:
            print(f"{r['workers']:>7} {r['sent']:>6} {r['duplicates']:>5} {r['bad_signatures']:>7} "
                  f"{r['wall_s']:>7.1f} {r['rate']:>7.0f} {r['receiver_rate']:>13.0f}")
        if args.delay_count:
            d = delay(tenant, contact, receiver, workers=2, count=args.delay_count, spread=args.spread)
            print(f"\nDelay scheduled_at → delivered, {d['count']} follow-ups due over {args.spread:.0f} s, "
                  "2 workers, real schedule (tick every 60 s)")
            print(f"{'p50 s':>7} {'p95 s':>7} {'max s':>7} {'mean s':>7}")
            print(f"{d['p50']:>7.2f} {d['p95']:>7.2f} {d['max']:>7.2f} {d['mean']:>7.2f}")
    finally:
        _clear(receiver)
        from tenants.models import Tenant

        Tenant.objects.filter(pk=TENANT_ID).delete()
        stop_server(receiver.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
