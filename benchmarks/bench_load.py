"""Load run for the rate limiter: 60 seconds against a `make run`-style server.

Starts gunicorn exactly as ``make run`` does (agent_project.wsgi, workers and threads
from WEB_CONCURRENCY / WEB_THREADS) on a free local port, with two tenants:

- "bench-limited": its key is driven ABOVE its per-minute limit;
- "bench-free":    its key is driven well UNDER its limit.

Requests are sent open-loop (on a fixed schedule, not waiting for answers, so a slow
server cannot hide behind its own slowness). The table reports, per key, how many
answers were 2xx, 429 and 5xx, latency percentiles, and the 429 count the
sliding-window algorithm predicts for the same send times (``expected 429``), computed
offline with the limiter's own pure core.

    python benchmarks/bench_load.py [--seconds 60] [--limited-rps 10] [--limit 120]
                                    [--free-rps 5] [--store database|redis]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EMBEDDED_PG_DIR", str(ROOT / "var" / "pg-bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_project.settings")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_tenants(limit: int, free_limit: int) -> dict[str, str]:
    import django

    django.setup()
    from django.core.management import call_command
    from django_scopes import scopes_disabled

    from tenants.models import ApiKey, Tenant
    from tenants.services import api_key_create, tenant_upsert

    call_command("migrate", interactive=False, verbosity=0)
    keys = {}
    for tenant_id, per_minute in (("bench-limited", limit), ("bench-free", free_limit)):
        tenant, _, _ = tenant_upsert(tenant_id=tenant_id, data={"name": tenant_id}, may_create=True)
        Tenant.objects.filter(pk=tenant_id).update(rate_limit_per_minute=per_minute)
        with scopes_disabled():
            ApiKey.objects.filter(tenant=tenant).delete()  # a fresh key: fresh per-key counters
        _, keys[tenant_id] = api_key_create(tenant=tenant, name="bench")
    return keys


def start_server(port: int, store: str, redis_url: str) -> subprocess.Popen:
    env = dict(os.environ, RATE_LIMIT_ENABLED="true", RATE_LIMIT_KEY_PREFIX=f"layan:rl:bench{time.time_ns()}:",
               REDIS_URL=redis_url if store == "redis" else "", DEBUG="true")
    log = open(ROOT / "var" / "bench-load-server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "agent_project.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", os.environ.get("WEB_CONCURRENCY", "2"), "--threads", os.environ.get("WEB_THREADS", "4"),
         "--timeout", "120"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited; see {log.name}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status in (200, 503):  # 503: serving, but no task worker runs here
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the server did not become healthy in 90 s")


class Driver:
    """Sends GET /tenants/{id}/settings for one key on a fixed schedule."""

    def __init__(self, port: int, tenant_id: str, key: str, rps: float, seconds: float, pool: ThreadPoolExecutor):
        self.port, self.tenant_id, self.key = port, tenant_id, key
        self.rps, self.seconds, self.pool = rps, seconds, pool
        self.results: list[tuple[float, int, float, str | None]] = []  # (sent_at, status, latency, retry_after)
        self.lock = threading.Lock()
        self.local = threading.local()

    def _conn(self):
        if getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return self.local.conn

    def _send(self, sent_at: float):
        started = time.perf_counter()
        status, retry_after = 599, None  # a transport failure, reported in its own column
        for _attempt in range(2):
            try:
                conn = self._conn()
                conn.request("GET", f"/tenants/{self.tenant_id}/settings", headers={"X-API-Key": self.key})
                response = conn.getresponse()
                response.read()
                status, retry_after = response.status, response.getheader("Retry-After")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once, as HTTP clients do.
                self.local.conn = None
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                break
        with self.lock:
            self.results.append((sent_at, status, time.perf_counter() - started, retry_after))

    def run(self, t0: float):
        count = int(self.rps * self.seconds)
        for i in range(count):
            due = t0 + i / self.rps
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            self.pool.submit(self._send, time.time())


def expected_refusals(send_times: list[float], limit: int) -> int:
    """What the limiter should refuse for these send times (its own pure core, one bucket)."""
    from agent_project.lib.ratelimit import Bucket, decide, window_of

    counts: dict[int, int] = {}
    refused = 0
    for t in sorted(send_times):
        window, elapsed = window_of(t)
        counts[window] = counts.get(window, 0) + 1
        decision = decide([Bucket("k", limit)], {"k": (counts.get(window - 1, 0), counts[window])}, elapsed)
        if not decision.allowed:
            counts[window] -= 1
            refused += 1
    return refused


def summarize(driver: Driver, limit: int) -> dict:
    statuses = [s for _, s, _, _ in driver.results]
    latencies = sorted(lat for _, _, lat, _ in driver.results)
    retry = sorted(int(r) for _, s, _, r in driver.results if s == 429 and r)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {
        "key": driver.tenant_id, "limit/min": limit, "sent/min": round(driver.rps * 60), "requests": len(statuses),
        "2xx": sum(200 <= s < 300 for s in statuses), "429": statuses.count(429),
        "expected 429": expected_refusals([t for t, _, _, _ in driver.results], limit),
        "5xx": sum(500 <= s < 599 for s in statuses), "conn err": statuses.count(599),
        "other": sum(s < 200 or 300 <= s < 500 and s != 429 for s in statuses),
        "p50 ms": round(q[49] * 1000, 1), "p95 ms": round(q[94] * 1000, 1),
        "Retry-After s": f"{retry[0]}-{retry[-1]}" if retry else "-",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # run_all.py (make bench BENCH_ARGS=load) runs this file with its own arguments left in sys.argv.
    parser.add_argument("selection", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--limit", type=int, default=120, help="per-minute limit of the limited tenant")
    parser.add_argument("--limited-rps", type=float, default=10, help="requests/s for the limited key (above)")
    parser.add_argument("--free-limit", type=int, default=1200)
    parser.add_argument("--free-rps", type=float, default=5, help="requests/s for the other key (under its limit)")
    parser.add_argument("--store", choices=["database", "redis"],
                        default="redis" if os.environ.get("REDIS_URL") else "database")
    args = parser.parse_args(argv)

    keys = setup_tenants(args.limit, args.free_limit)
    port = free_port()
    server = start_server(port, args.store, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        pool = ThreadPoolExecutor(max_workers=64)
        limited = Driver(port, "bench-limited", keys["bench-limited"], args.limited_rps, args.seconds, pool)
        free = Driver(port, "bench-free", keys["bench-free"], args.free_rps, args.seconds, pool)
        t0 = time.time() + 0.5
        threads = [threading.Thread(target=d.run, args=(t0,)) for d in (limited, free)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pool.shutdown(wait=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    rows = [summarize(limited, args.limit), summarize(free, args.free_limit)]
    print(f"\nLoad run: {args.seconds:.0f}s, store={args.store}, gunicorn workers="
          f"{os.environ.get('WEB_CONCURRENCY', '2')} threads={os.environ.get('WEB_THREADS', '4')}")
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in cols))
    ok = (rows[0]["429"] > 0 and abs(rows[0]["429"] - rows[0]["expected 429"]) <= max(3, 0.02 * rows[0]["requests"])
          and rows[1]["429"] == 0 and all(r["5xx"] == 0 and r["conn err"] == 0 for r in rows))
    print(json.dumps({"verdict": "ok" if ok else "UNEXPECTED", "limited_429_rate":
                      round(rows[0]["429"] / max(1, rows[0]["requests"]), 3),
                      "expected_429_rate": round(rows[0]["expected 429"] / max(1, rows[0]["requests"]), 3)}))
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    if code:  # run_all.py runs this file in-process: only a failure should stop it
        sys.exit(code)
