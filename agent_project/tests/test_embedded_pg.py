"""Several processes (web, worker, manage.py) start or join one embedded server safely."""

import subprocess
import sys
import textwrap

import psycopg

from agent_project.lib.embedded_pg import EmbeddedServer, other_clients, stop_server

JOIN = textwrap.dedent("""
    import sys, json
    from agent_project.lib.embedded_pg import ensure_server
    s = ensure_server(sys.argv[1])
    import psycopg
    with psycopg.connect(host=s.socket_dir, user="postgres", dbname="postgres") as c:
        pid = c.execute("SELECT pg_postmaster_start_time()::text, current_setting('shared_buffers')").fetchone()
    print(json.dumps({"socket": s.socket_dir, "started_here": s.started_here, "postmaster": pid[0], "sb": pid[1]}))
""")


def test_concurrent_processes_share_one_server(tmp_path):
    import json

    pgdata = tmp_path / "pg"
    procs = [subprocess.Popen([sys.executable, "-c", JOIN, str(pgdata)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    try:
        assert all(p.returncode == 0 for p in procs)
        assert len({r["socket"] for r in results}) == 1
        assert len({r["postmaster"] for r in results}) == 1  # one server, joined by all
        assert sum(r["started_here"] for r in results) >= 1
        assert {r["sb"] for r in results} == {"512MB"}  # tuned once, on creation
        server = EmbeddedServer(pgdata=pgdata.resolve(), socket_dir=results[0]["socket"], started_here=False)
        assert other_clients(server) == 0
        with psycopg.connect(host=server.socket_dir, user="postgres", dbname="postgres") as conn:
            conn.execute("SELECT 1")
    finally:
        stop_server(pgdata)
    # stopped: a new connection fails
    try:
        psycopg.connect(host=results[0]["socket"], user="postgres", dbname="postgres", connect_timeout=2).close()
        reachable = True
    except psycopg.OperationalError:
        reachable = False
    assert reachable is False
