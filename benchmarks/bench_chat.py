"""``POST /chat`` overhead without a model: the offline provider, a tenant of 10k chunks,
the server run as in production (gunicorn, sync workers), over real HTTP.

Prints p50/p95 per stage (as the service measures them and reports in
``timings_ms``), the client-side latency, and requests per second at a few
concurrency levels. "overhead" is the server's total minus retrieval and the model:
contact + conversation + storing both turns + prompt + bubbles.

    python benchmarks/bench_chat.py [--requests 300] [--chunks 10000] [--workers 2] [--keep]

The tenant is removed afterwards (``--keep`` keeps it for the next run): its 10k
fake-embedder vectors in the shared HNSW graph slowed the speed benchmark's big tenant
(HNSW p95 ~10 -> 15-19 ms), whose table must hold its own 200k chunks and nothing else.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANT_ID = "bench-chat"

PRODUCTS = ["buket mawar", "buket tulip", "karangan bunga", "parsel buah", "kue ulang tahun", "hampers lebaran",
            "bunga papan", "tanaman hias", "vas keramik", "kartu ucapan", "anggrek bulan", "bunga meja"]
CITIES = ["Bandung", "Jakarta", "Surabaya", "Medan", "Makassar", "Yogyakarta", "Semarang", "Denpasar"]
TOPICS = ["harga", "pengiriman", "garansi", "pembayaran", "jam buka", "retur", "promo", "stok"]
QUESTIONS = [
    "Berapa harga buket mawar di Bandung?", "Apakah pengiriman ke Surabaya gratis?",
    "Bagaimana cara retur vas keramik?",
    "Kapan jam buka cabang Medan?", "Ada promo hampers lebaran?", "Bisa bayar pakai transfer untuk parsel buah?",
    "Stok anggrek bulan di Jakarta ada?", "Apakah bisa bayar pakai kripto?", "Garansi tanaman hias berapa lama?",
    "Halo kak, mau tanya dong", "Kirim bunga papan ke Makassar berapa lama?", "Terima kasih ya kak!",
]


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("EMBEDDED_PG_DIR", str(ROOT / "var" / "pg-bench"))
    env.update({"DJANGO_SETTINGS_MODULE": "agent_project.settings", "HF_HUB_OFFLINE": "1",
                "EMBEDDING_PROVIDER": "fake", "LLM_PROVIDER": "offline", "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_ENABLED": "false", "DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 40,
                "ALLOWED_HOSTS": "127.0.0.1,localhost", "GEMINI_API_KEY": ""})
    return env


def setup_django() -> None:
    os.environ.update(_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def passage(rng: random.Random, i: int) -> tuple[str, str]:
    product, city, topic = rng.choice(PRODUCTS), rng.choice(CITIES), rng.choice(TOPICS)
    price = rng.randrange(50, 3000) * 1000
    title = f"{topic.title()} {product} {city} #{i}"
    text = (f"Informasi {topic} untuk {product} di cabang {city}. Harga mulai Rp {price:,}".replace(",", ".")
            + f". Pesanan sebelum pukul {rng.randrange(9, 16):02d}.00 dikirim di hari yang sama. "
            f"Hubungi admin cabang {city} untuk {topic} lainnya, pembayaran lewat transfer atau QRIS.")
    return title, text


def ensure_tenant(chunks: int) -> tuple[str, int]:
    """The benchmark tenant with at least ``chunks`` chunks (kept from a --keep run, or built) and a fresh key."""
    from knowledge.models import Chunk
    from knowledge.services import entries_upsert
    from tenants.models import ApiKey, Tenant
    from tenants.scoping import tenant_scope
    from tenants.services import api_key_create, tenant_upsert

    tenant = Tenant.objects.filter(pk=TENANT_ID).first()
    if tenant is None:
        tenant, _, _ = tenant_upsert(tenant_id=TENANT_ID, may_create=True, data={
            "name": "Toko Bunga Benchmark", "persona": "Kamu Mawar, asisten toko bunga yang ramah.",
            "sop": "Tawarkan kartu ucapan gratis. Arahkan komplain ke admin cabang.",
            "working_hours": {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}})
    # Every turn goes through retrieval and the model: unanswered questions do not hand
    # the conversation to a person here (channels/handoff/), which would silence the bot.
    Tenant.objects.filter(pk=TENANT_ID).update(handoff_on_unanswered=False)
    with tenant_scope(tenant):
        have = Chunk.objects.count()
        rng = random.Random(7)
        i = have
        started = time.monotonic()
        while have < chunks:
            batch = [passage(rng, i + j) for j in range(min(500, chunks - have))]
            entries_upsert(tenant=tenant, entries=[{"title": t, "content": c, "external_id": f"bench-{i + j}"}
                                                   for j, (t, c) in enumerate(batch)])
            i += len(batch)
            have = Chunk.objects.count()
            print(f"  loaded {have} chunks ({time.monotonic() - started:.0f}s)", flush=True)
        ApiKey.objects.filter(name="bench").delete()
        _, key = api_key_create(tenant=tenant, name="bench")
        return key, have


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "agent_project.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--worker-class", "sync", "--timeout", "60", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("gunicorn did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def table(headers: list[str], rows: list[list]) -> str:
    cells = [headers] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def run(base: str, key: str, n: int, concurrency: int, seed: int):
    import httpx

    rng = random.Random(seed)
    # Each run's customers are its own (the seed and time in the id): a conversation that an
    # earlier turn handed to a person (channels/handoff/) skips the model, and would not be
    # the path measured here. Customers still ask several questions each, as in real traffic.
    run_id = f"{seed}{int(time.time()) % 100000:05d}"
    jobs = [(f"62812{run_id}{rng.randrange(100):03d}", rng.choice(QUESTIONS)) for _ in range(n)]
    clients = [httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) for _ in range(concurrency)]

    def one(index: int):
        user, question = jobs[index]
        t = time.perf_counter()
        response = clients[index % concurrency].post("/chat", json={
            "user_id": user, "channel": "whatsapp", "messages": [{"role": "user", "content": question}]})
        elapsed = (time.perf_counter() - t) * 1000
        if response.status_code != 200:
            raise SystemExit(f"/chat answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        return elapsed, body["timings_ms"], body.get("status", "bot")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - started
    for c in clients:
        c.close()
    return results, n / wall


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark tenant for the next run")
    args, _ = parser.parse_known_args(argv)  # run_all.py leaves its own arguments in sys.argv

    setup_django()
    print(f"preparing tenant {TENANT_ID} with {args.chunks} chunks (fake embedder)…", flush=True)
    key, chunks = ensure_tenant(args.chunks)
    port = free_port()
    server = start_gunicorn(port, args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        run(base, key, 30, 2, seed=1)  # warm-up: connections, caches, the embedder in each worker
        rows, throughput = [], []
        stage_rows = None
        for concurrency in (1, 4, 8):
            results, rps = run(base, key, args.requests, concurrency, seed=concurrency)
            client = [r[0] for r in results]
            throughput.append([concurrency, args.requests, rps, percentile(client, 50), percentile(client, 95)])
            if concurrency == 1:
                stages = ["store_user_ms", "retrieval_ms", "prompt_ms", "generation_ms", "store_reply_ms",
                          "overhead_ms", "total_ms"]
                # Turns where a person had the conversation skip the model: not the path measured.
                answered = [r for r in results if "generation_ms" in r[1]]
                silent = len(results) - len(answered)
                stage_rows = [[s.removesuffix("_ms"), percentile([r[1][s] for r in answered], 50),
                               percentile([r[1][s] for r in answered], 95)] for s in stages]
                stage_rows.append(["client end-to-end (HTTP)", percentile(client, 50), percentile(client, 95)])
        print(f"\n/chat, offline provider, tenant of {chunks} chunks, gunicorn {args.workers} sync workers, "
              f"{os.cpu_count()} CPUs")
        print(f"\nper stage, one client at a time (ms), over {args.requests - silent} answered turns "
              f"({silent} went to a person after an earlier 'I don't know'):")
        print(table(["stage", "p50", "p95"], stage_rows))
        print("\nthroughput:")
        print(table(["concurrency", "requests", "req/s", "client p50 ms", "client p95 ms"], throughput))
        print("\ntargets: p95 < 50 ms end to end; overhead (outside retrieval and the model) < 10 ms")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if not args.keep:
            remove_tenant()


def remove_tenant() -> None:
    """Delete the benchmark tenant and vacuum its rows out of the shared indexes."""
    from django.db import connection

    from tenants.models import Tenant

    Tenant.objects.filter(pk=TENANT_ID).delete()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE knowledge_chunk")


if __name__ == "__main__":
    main()
