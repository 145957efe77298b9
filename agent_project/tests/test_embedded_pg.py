"""Several processes (web, worker, manage.py) start or join one embedded server safely."""

import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from agent_project.lib.embedded_pg import EmbeddedServer, _auto_conf, other_clients, server_settings, stop_server

JOIN = textwrap.dedent("""
    import sys, json
    from agent_project.lib.embedded_pg import ensure_server
    s = ensure_server(sys.argv[1])
    import psycopg
    with psycopg.connect(host=s.socket_dir, user="postgres", dbname="postgres") as c:
        pid = c.execute("SELECT pg_postmaster_start_time()::text, "
                        "(SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers')").fetchone()
    print(json.dumps({"socket": s.socket_dir, "started_here": s.started_here, "postmaster": pid[0], "sb": pid[1]}))
""")


def test_concurrent_processes_share_one_server(pg_folder):
    import json

    pgdata = pg_folder
    procs = [subprocess.Popen([sys.executable, "-c", JOIN, str(pgdata)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    try:
        assert all(p.returncode == 0 for p in procs)
        assert len({r["socket"] for r in results}) == 1
        assert len({r["postmaster"] for r in results}) == 1  # one server, joined by all
        assert sum(r["started_here"] for r in results) >= 1
        # tuned once, on creation, before anyone joined
        assert {f'{r["sb"]}MB' for r in results} == {server_settings()["shared_buffers"]}
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


@pytest.mark.parametrize("memory_mb, shared, cache", [
    (1024, "256MB", "512MB"),  # a small machine: the floor
    (8192, "1024MB", "4096MB"),  # an eighth
    (24576, "2048MB", "12288MB"),  # capped
])
def test_server_settings_follow_the_machines_memory(memory_mb, shared, cache):
    settings = server_settings(memory_mb)
    assert (settings["shared_buffers"], settings["effective_cache_size"]) == (shared, cache)


def test_a_cluster_tuned_elsewhere_is_retuned_when_started(pg_folder):
    pgdata = pg_folder
    first = subprocess.run([sys.executable, "-c", JOIN, str(pgdata)], capture_output=True, text=True, timeout=120,
                           check=False)
    assert first.returncode == 0, first.stderr
    stop_server(pgdata)
    conf = pgdata / "postgresql.auto.conf"
    conf.write_text(conf.read_text().replace(server_settings()["shared_buffers"], "128MB"))
    assert _auto_conf(pgdata.resolve())["shared_buffers"] == "128MB"
    second = subprocess.run([sys.executable, "-c", JOIN, str(pgdata)], capture_output=True, text=True, timeout=120,
                            check=False)
    try:
        assert second.returncode == 0, second.stderr
        import json

        result = json.loads(second.stdout.strip().splitlines()[-1])
        assert result["started_here"] is True
        assert f'{result["sb"]}MB' == server_settings()["shared_buffers"]
        assert _auto_conf(pgdata.resolve())["shared_buffers"] == server_settings()["shared_buffers"]
    finally:
        stop_server(pgdata)


def test_a_start_waits_for_a_server_still_shutting_down(pg_folder):
    """`make run` started right after a stop found the old server still shutting down, joined it, and died with
    "the database system is shutting down". A smart shutdown held open by one connection keeps the server in that
    state for as long as the test likes: the new process must wait, then start it afresh."""
    import json

    from pgserver.utils import PostmasterInfo

    from agent_project.lib.embedded_pg import _pg_ctl, ensure_server

    pgdata = pg_folder.resolve()
    server = ensure_server(pgdata)
    holder = psycopg.connect(host=server.socket_dir, user="postgres", dbname="postgres")
    try:
        _pg_ctl(pgdata, ["-W", "-m", "smart", "stop"])  # returns at once; the server waits for `holder`
        deadline = time.monotonic() + 60
        while PostmasterInfo.read_from_pgdata(pgdata).status != "stopping":
            assert time.monotonic() < deadline, "the server never began to stop"
            time.sleep(0.1)
        starter = subprocess.Popen([sys.executable, "-c", JOIN, str(pgdata)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        waiting = starter.stderr.readline()  # its first word: it saw the server stopping
        assert "is stopping; waiting for it" in waiting, waiting
        holder.close()  # the shutdown completes
        out, err = starter.communicate(timeout=120)
        assert starter.returncode == 0, waiting + err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["started_here"] is True
    finally:
        holder.close()
        stop_server(pgdata)


def test_a_process_whose_server_was_stopped_starts_it_again(pg_folder):
    """pgserver hands a process its cached handle of the server; after a stop that handle pointed at nothing."""
    from agent_project.lib.embedded_pg import ensure_server

    pgdata = pg_folder
    first = ensure_server(pgdata)
    try:
        assert stop_server(pgdata) is True and stop_server(pgdata) is False
        assert other_clients(first) == 0  # a server that is gone has no clients (and no traceback)
        again = ensure_server(pgdata)
        assert again.started_here is True
        with psycopg.connect(host=again.socket_dir, user="postgres", dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stop_server(pgdata)
