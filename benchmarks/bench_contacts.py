"""Contacts: how fast contacts are upserted, and whether ``GET /contacts/logs`` for one
contact stays fast in a tenant with a million history rows (which index serves it).

    python benchmarks/bench_contacts.py [--logs 1000000] [--contact-logs 10000] [--upserts 2000] [--requests 200]
    make bench BENCH_ARGS=contacts

Runs against the benchmark database (var/pg-bench unless EMBEDDED_PG_DIR says otherwise)
in its own tenant, ``bench-contacts``, which it empties first and removes at the end.
The history is loaded with one ``INSERT ... SELECT generate_series`` so a million rows
take well under a few minutes; requests go through the whole Django stack (auth,
tenant scope, serializer, pagination) with the test client, without a network hop.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANT_ID = "bench-contacts"


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("EMBEDDED_PG_DIR", str(ROOT / "var" / "pg-bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_project.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    import logging

    logging.getLogger("layan.request").setLevel(logging.WARNING)  # one log line per request would drown the table
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _empty_tenant() -> None:
    from django.db import connection

    from tenants.models import Tenant

    with connection.cursor() as cursor:
        # Raw deletes first: the ORM's cascade would load a million rows to delete them one by one.
        for table in ("contacts_contactlog", "contacts_contactidentity", "contacts_contactdeletion",
                      "contacts_contactmerge"):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [TENANT_ID])  # noqa: S608 - fixed names
    Tenant.objects.filter(pk=TENANT_ID).delete()


def bench_upserts(tenant, n: int) -> list[tuple[str, int, float]]:
    from django.test import Client

    from contacts.services import contact_for_channel, contact_upsert

    rows = []
    phones = [f"0813{i:08d}" for i in range(n)]
    t0 = time.perf_counter()
    for i, phone in enumerate(phones):
        contact_upsert(tenant=tenant, data={"name": f"Pelanggan {i}", "phone": phone, "tags": ["bench"]})
    rows.append(("contact_upsert, new contact (service)", n, time.perf_counter() - t0))

    t0 = time.perf_counter()
    for i, phone in enumerate(phones):
        # Another spelling of the same number: a match by phone, an update.
        contact_upsert(tenant=tenant, data={"phone": "+62" + phone[1:], "attributes": {"seen": i}})
    rows.append(("contact_upsert, existing contact (service)", n, time.perf_counter() - t0))

    t0 = time.perf_counter()
    for i in range(n):
        contact_for_channel(tenant=tenant, channel="telegram", external_id=f"tg-{i}")
    rows.append(("contact_for_channel, first sight", n, time.perf_counter() - t0))
    t0 = time.perf_counter()
    for i in range(n):
        contact_for_channel(tenant=tenant, channel="telegram", external_id=f"tg-{i}")
    rows.append(("contact_for_channel, known identity", n, time.perf_counter() - t0))

    client = Client(HTTP_X_API_KEY=tenant.bench_key)
    m = max(1, n // 2)
    t0 = time.perf_counter()
    for i in range(m):
        r = client.post("/contacts", {"phone": f"0857{i:08d}", "email": f"b{i}@example.com"},
                        content_type="application/json")
        assert r.status_code == 201, r.content
    rows.append(("POST /contacts, new (HTTP stack)", m, time.perf_counter() - t0))
    t0 = time.perf_counter()
    for i in range(m):
        r = client.post("/contacts", {"email": f"B{i}@Example.com", "tags": ["again"]},
                        content_type="application/json")
        assert r.status_code == 200, r.content
    rows.append(("POST /contacts, existing (HTTP stack)", m, time.perf_counter() - t0))
    return rows


def load_history(tenant, *, total: int, for_target: int, contacts: int = 1000) -> tuple[int, float]:
    """``contacts`` contacts and ``total`` log rows, ``for_target`` of them (spread evenly over
    time) belonging to one target contact. Returns the target's id and the load time."""
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO contacts_contact (tenant_id, name, tags, attributes, opted_out,
                                             first_seen_at, last_seen_at, created_at, updated_at)
               SELECT %s, 'History ' || g, '[]', '{}', false, now(), now(), now(), now()
               FROM generate_series(1, %s) g RETURNING id""",
            [tenant.pk, contacts],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
        target, others = ids[0], ids[1:]
        every = max(1, total // for_target)
        cursor.execute(
            """INSERT INTO contacts_contactlog (tenant_id, contact_id, role, content, channel, at,
                                                external_message_id, conversation_id, created_at)
               SELECT %(tenant)s,
                      CASE WHEN g %% %(every)s = 0 THEN %(target)s
                           ELSE (%(others)s::bigint[])[1 + g %% %(n_others)s] END,
                      (ARRAY['user', 'assistant'])[1 + g %% 2],
                      'Pesan nomor ' || g || ': apakah stok masih ada, kak?',
                      (ARRAY['whatsapp', 'telegram', 'web'])[1 + g %% 3],
                      now() - make_interval(secs => g * 5),
                      'bench-' || g,
                      NULL,
                      now()
               FROM generate_series(1, %(total)s) g""",
            {"tenant": tenant.pk, "every": every, "target": target, "others": others,
             "n_others": len(others), "total": total},
        )
        cursor.execute("VACUUM ANALYZE contacts_contactlog")  # visibility map + statistics, as autovacuum would
    return target, time.perf_counter() - t0


def _timed_rounds(client, path: str, cases: list[tuple[str, dict, int]]) -> dict[str, list[float]]:
    """Requests in rounds, one of each case per round, so a noisy neighbour on the shared
    machine slows every case alike instead of whichever happened to run at that moment."""
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for i in range(max(n for _, _, n in cases)):
        for label, params, n in cases:
            if i >= n:
                continue
            t0 = time.perf_counter()
            r = client.get(path, params)
            times[label].append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.content[:300]
    return times


def _explain(sql: str, params: list) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _indexes(plan: str) -> str:
    found = re.findall(r"(Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)", plan)
    seq = "Seq Scan" in plan
    names = sorted({f"{kind} {name}" for kind, name in found})
    return ", ".join(names + (["Seq Scan"] if seq else [])) or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=1_000_000, help="history rows in the tenant")
    parser.add_argument("--contact-logs", type=int, default=10_000, help="history rows of the measured contact")
    parser.add_argument("--upserts", type=int, default=2000, help="contacts per upsert measurement")
    parser.add_argument("--requests", type=int, default=200, help="GET requests per latency measurement")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark tenant's rows afterwards")
    # run_all.py passes its own arguments (area names such as "contacts") through: ignore those.
    args, rest = parser.parse_known_args(argv)
    if any(a.startswith("-") for a in rest):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    _setup()
    from django.test import Client
    from django.utils import timezone

    from contacts.models import ContactLog
    from contacts.selectors import contact_log_list
    from tenants.models import Tenant
    from tenants.scoping import tenant_scope
    from tenants.services import tenant_upsert

    _empty_tenant()
    tenant, _, key = tenant_upsert(tenant_id=TENANT_ID, data={"name": "Bench contacts"}, may_create=True)
    tenant.bench_key = key
    # The benchmark measures the path, not the per-tenant request limit.
    Tenant.objects.filter(pk=TENANT_ID).update(rate_limit_per_minute=10**7)

    print(f"\nUpserts ({args.upserts} per row, one thread)")
    print(f"{'operation':48} {'n':>6} {'seconds':>8} {'per s':>8}")
    for label, n, seconds in bench_upserts(tenant, args.upserts):
        print(f"{label:48} {n:>6} {seconds:>8.2f} {n / seconds:>8.0f}")

    print(f"\nLoading {args.logs:,} history rows ({args.contact_logs:,} for one contact)...", flush=True)
    target, load_seconds = load_history(tenant, total=args.logs, for_target=args.contact_logs)
    with tenant_scope(tenant):
        total = ContactLog.objects.count()
        mine = ContactLog.objects.filter(contact_id=target).count()
    print(f"loaded in {load_seconds:.1f}s ({args.logs / load_seconds:,.0f} rows/s, with VACUUM ANALYZE); "
          f"tenant has {total:,} rows, contact {target} has {mine:,}")

    client = Client(HTTP_X_API_KEY=key)
    deep = max(1, min(100, mine // 50))  # a page deep in the history: OFFSET cost shows here
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    cases = [
        ("contact, page 1 (50)", {"contact_id": target}, args.requests),
        (f"contact, page {deep} (50)", {"contact_id": target, "page": deep}, args.requests),
        ("contact + channel, page 1", {"contact_id": target, "channel": "whatsapp"}, args.requests),
        ("contact + last 7 days", {"contact_id": target, "since": week_ago}, args.requests),
        ("whole tenant, page 1 (counts all)", {}, max(10, args.requests // 10)),
    ]
    for _, params, _ in cases:
        client.get("/contacts/logs", params)  # warm the connection and caches
    print(f"\nGET /contacts/logs in a tenant of {total:,} rows, contact with {mine:,} (ms, whole Django stack)")
    print(f"{'query':36} {'n':>5} {'p50':>8} {'p95':>8} {'max':>8}")
    for label, times in _timed_rounds(client, "/contacts/logs", cases).items():
        print(f"{label:36} {len(times):>5} {statistics.median(times):>8.1f} {_p(times, 0.95):>8.1f} "
              f"{max(times):>8.1f}")

    with tenant_scope(tenant):
        page_sql, page_params = contact_log_list(tenant=tenant, contact_id=target)[:50].query.sql_with_params()
    count_sql = "SELECT COUNT(*) FROM contacts_contactlog WHERE tenant_id = %s AND contact_id = %s"
    page_plan = _explain(page_sql, list(page_params))
    count_plan = _explain(count_sql, [tenant.pk, target])
    print("\nEXPLAIN of the page query (the contact's newest 50):")
    print(page_plan)
    print("\nEXPLAIN of the paginator's count:")
    print(count_plan)
    with tenant_scope(tenant):
        all_sql, all_params = contact_log_list(tenant=tenant)[:50].query.sql_with_params()
    all_plan = _explain(all_sql, list(all_params))
    all_count_plan = _explain("SELECT COUNT(*) FROM contacts_contactlog WHERE tenant_id = %s", [tenant.pk])
    channel_count_plan = _explain(count_sql + " AND channel = %s", [tenant.pk, target, "whatsapp"])
    print("\nEXPLAIN of the count with a channel filter:")
    print(channel_count_plan)
    print("\nEXPLAIN of the whole tenant's newest 50:")
    print(all_plan)
    print(f"\nindex use: contact page → {_indexes(page_plan)}; contact count → {_indexes(count_plan)}; "
          f"contact+channel count → {_indexes(channel_count_plan)}; "
          f"tenant page → {_indexes(all_plan)}; tenant count → {_indexes(all_count_plan)}")

    if not args.keep:
        t0 = time.perf_counter()
        _empty_tenant()
        print(f"(benchmark tenant removed in {time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
