"""Real django-q2 clusters (``manage.py qcluster`` processes) on the test database, with
whichever broker the settings choose (the ORM here, Redis in CI), sending to a local
receiver. Rows are committed (transactional_db) so the workers can see them."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule, Task
from django_scopes import scopes_disabled

from followups.models import FollowUp
from followups.tests.support import Cluster, enqueue, stop_all, wait_clusters_ready, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def clusters(transactional_db, tmp_path):
    """Start qcluster processes; every one is stopped before the test database is flushed."""
    started: list[Cluster] = []

    def start(label: str, **kwargs) -> Cluster:
        cluster = Cluster(label=label, log_dir=tmp_path, **kwargs)
        started.append(cluster)
        return cluster

    yield start
    stop_all(started)


def _bulk_due(tenant, contact, n: int) -> None:
    now = timezone.now()
    rows = [FollowUp(tenant=tenant, contact=contact, channel="webhook", message=f"Pesan {i} untuk {{first_name}}",
                     scheduled_at=now - timedelta(seconds=1), next_attempt_at=now - timedelta(seconds=1))
            for i in range(n)]
    with scopes_disabled():
        FollowUp.objects.bulk_create(rows, batch_size=500)


def _counts() -> dict:
    with scopes_disabled():
        return {s: FollowUp.objects.filter(status=s).count() for s in FollowUp.Status.values}


def test_no_duplicates_with_three_workers_at_once(tenant_a, receiver, hooked, make_contact, clusters):
    """2,000 due follow-ups, three worker processes draining at the same time: every
    follow-up reaches the receiver exactly once and is marked sent."""
    tenant = hooked(tenant_a, receiver)
    _bulk_due(tenant, make_contact(tenant), 2000)
    env = {"FOLLOWUP_BATCH_SIZE": "10", "FOLLOWUP_DISPATCH_WINDOW_SECONDS": "240"}
    cluster = clusters("three-workers", workers=3, env=env)
    wait_clusters_ready([cluster])
    # Three drain tasks for three idle worker processes: a worker busy draining takes no
    # second task, so the three drains run at once, each in its own process.
    for _ in range(3):
        enqueue("followups.tasks.dispatch_drain")
    wait_for(lambda: _counts()["sent"] == 2000 or _counts()["failed"], timeout=600, interval=1, clusters=[cluster],
             what="2,000 follow-ups to be sent")

    assert _counts() == {"pending": 0, "sending": 0, "sent": 2000, "failed": 0, "cancelled": 0}
    with scopes_disabled():
        rows = list(FollowUp.objects.values_list("idempotency_key", "attempts", "claimed_by"))
    received = receiver.keys()
    assert len(receiver.deliveries) == 2000
    assert set(received) == {key for key, _, _ in rows} and set(received.values()) == {1}
    assert all(d.signature_ok for d in receiver.deliveries)
    assert {attempts for _, attempts, _ in rows} == {1}
    assert len({worker for _, _, worker in rows}) == 3  # the three processes really shared the work


def test_the_schedule_is_declared_once_and_a_real_cluster_runs_it(tenant_a, receiver, hooked, make_contact,
                                                                 clusters):
    call_command("setup_schedules", verbosity=0)
    call_command("setup_schedules", verbosity=0)  # idempotent by name
    schedule = Schedule.objects.get(name="followups-dispatch")
    assert Schedule.objects.filter(name="followups-dispatch").count() == 1
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("followups.tasks.dispatch_due", "I", 1)

    tenant = hooked(tenant_a, receiver)
    _bulk_due(tenant, make_contact(tenant), 45)
    env = {"FOLLOWUP_BATCH_SIZE": "10", "FOLLOWUP_DISPATCH_PARALLELISM": "2",
           "FOLLOWUP_DISPATCH_WINDOW_SECONDS": "5"}
    worker = clusters("sched", workers=2, env=env)
    # Addressed to this run's queue, and due now.
    Schedule.objects.filter(pk=schedule.pk).update(cluster=worker.queue, next_run=timezone.now())
    # The cluster's scheduler looks every ~30 s: allow a couple of rounds.
    wait_for(lambda: _counts()["sent"] == 45, timeout=240, interval=1, clusters=[worker],
             what="the scheduled dispatcher to send 45 follow-ups")
    assert set(receiver.keys().values()) == {1} and len(receiver.keys()) == 45
    tick = wait_for(lambda: Task.objects.filter(func="followups.tasks.dispatch_due", success=True).first(),
                    timeout=60, clusters=[worker], what="the tick's result")
    assert tick.result["helpers"] == 1  # 45 due with batches of 10: it fanned out to a second worker
    wait_for(lambda: Task.objects.filter(func="followups.tasks.dispatch_drain", success=True).exists(),
             timeout=60, clusters=[worker], what="the helper's result")
    assert Schedule.objects.get(pk=schedule.pk).next_run > timezone.now()  # and it will come again


def test_a_worker_killed_mid_send_is_recovered_after_its_lease(tenant_a, receiver, hooked, make_contact,
                                                              make_followup, clusters):
    """The first worker dies while the receiver holds its request: the row stays `sending`
    until the lease runs out, then another worker sends it again with the same idempotency
    key, and a receiver that deduplicates by that key processes it once."""
    release = threading.Event()

    def hold_first(delivery, n):
        if n == 1:
            release.wait(60)
        return 200, {}, b"{}"

    receiver.respond = hold_first
    tenant = hooked(tenant_a, receiver)
    followup = make_followup(tenant, make_contact(tenant))
    env = {"FOLLOWUP_LEASE_SECONDS": "4", "FOLLOWUP_DISPATCH_WINDOW_SECONDS": "60"}

    doomed = clusters("doomed", env=env)
    enqueue("followups.tasks.dispatch_drain")
    wait_for(lambda: receiver.deliveries, timeout=120, clusters=[doomed], what="the first delivery")
    doomed.kill()
    release.set()
    with scopes_disabled():
        first = FollowUp.objects.get(pk=followup.pk)
    assert (first.status, first.attempts) == ("sending", 1)

    rescuer = clusters("rescuer", env=env)
    # The tick's dispatcher stays for rows that come due within its window: the lease ends in seconds.
    # Redis queues are not acknowledged: a task pushed while Redis still serves the killed cluster's
    # pending BLPOP goes to that dead client and is lost (one CI run in about ten timed out here with
    # an idle rescuer). In production the scheduler's next tick enqueues dispatch_due again; so does
    # this test, every 15 s, and the row must still be sent once, on its second attempt.
    deadline = time.monotonic() + 120
    while True:
        enqueue("followups.tasks.dispatch_due")
        try:
            wait_for(lambda: FollowUp.objects.with_scopes_disabled().get(pk=followup.pk).status == "sent",
                     timeout=15, clusters=[rescuer], what="the rescued follow-up to be sent")
            break
        except AssertionError as exc:
            if not str(exc).startswith("timed out") or time.monotonic() > deadline:
                raise

    with scopes_disabled():
        row = FollowUp.objects.get(pk=followup.pk)
    assert row.attempts == 2 and row.claimed_by != first.claimed_by
    assert receiver.keys() == {followup.idempotency_key: 2}  # at least once on the wire ...
    assert list(receiver.first_seen()) == [followup.idempotency_key]  # ... exactly once for the receiver


def test_what_the_worker_processes_count_is_on_the_workers_own_metrics(tenant_a, receiver, hooked, make_contact,
                                                                       make_followup, clusters, tmp_path):
    """A follow-up sent by a worker process moves layan_followups_total on the worker's
    /metrics (``manage.py run_worker``): the web's /metrics runs in another process (in
    production another container) and cannot see it. Protected like the web's."""
    import json
    import socket
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    tenant = hooked(tenant_a, receiver)
    make_followup(tenant, make_contact(tenant))
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"a previous run")  # unreadable: the scrape fails unless removed
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = clusters("metrics", command="run_worker",
                      env={"PROMETHEUS_MULTIPROC_DIR": str(folder), "WORKER_METRICS_PORT": str(port),
                           "METRICS_TOKEN": "worker-secret"})
    wait_clusters_ready([worker])

    def scrape(token: str | None, path: str = "/metrics") -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sent() -> float | None:
        status, body = scrape("worker-secret")
        assert status == 200, body
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert "layan_followup_queue_depth" not in families  # the web's gauges stay on the web
        samples = families["layan_followups"].samples if "layan_followups" in families else []
        return next((s.value for s in samples if s.name == "layan_followups_total"
                     and s.labels == {"outcome": "sent"}), None)

    assert sent() is None  # nothing sent yet, and the previous run's file is gone
    assert not (folder / "counter_999999.db").exists()
    enqueue("followups.tasks.dispatch_drain")
    assert wait_for(sent, timeout=120, clusters=[worker], what="the worker to count the follow-up it sent") == 1.0
    assert len(receiver.deliveries) == 1
    for token in (None, "wrong"):
        status, body = scrape(token)
        assert status == 401 and json.loads(body)["error"]["code"] == "metrics_unauthorized"
    status, body = scrape("worker-secret", path="/other")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
