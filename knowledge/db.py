"""Raw psycopg access where the ORM is too slow: binary COPY of chunks and
vector parameters/results as numpy arrays (pgvector's psycopg adapters,
registered per cursor so the ORM's own handling of VectorField is untouched)."""

from __future__ import annotations

import atexit
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
from django.db import connection
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

_type_info: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _VectorCursor(psycopg.Cursor):
    """Server-side parameter binding, so a ``%b`` vector travels as 1.5 kB of binary
    instead of being formatted as text (Django's client-side cursors made 384 float
    strings per parameter: ~0.4 ms each). Never prepared: a prepared statement's
    generic plan ignores the tenant's size, which the vector plan depends on."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=False, binary=binary)


@contextmanager
def vector_cursor():
    """A raw psycopg cursor on Django's connection (inside its transaction, if any) that
    speaks ``vector``."""
    with connection.cursor() as wrapper:
        pg_conn = wrapper.cursor.connection
        info = _type_info.get(pg_conn)
        if info is None:
            info = _type_info[pg_conn] = TypeInfo.fetch(pg_conn, "vector")
        with _VectorCursor(pg_conn) as raw:
            register_vector_info(raw, info)
            yield raw


#: libpq connection keywords taken over from Django's connection parameters.
_CONNECT_KEYS = ("dbname", "user", "password", "host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey",
                 "options", "client_encoding", "connect_timeout", "target_session_attrs")


class _Beside:
    """One extra connection with a thread of its own: a big tenant's vector search runs
    on it while the keyword search runs on Django's connection (two PostgreSQL backends,
    two cores). Autocommit, so it sees what is committed; callers inside a transaction
    must not use it (it would not see their writes)."""

    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-beside")
        self.conn: psycopg.Connection | None = None
        self.info = None

    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            params = connection.get_connection_params()
            self.conn = psycopg.connect(**{k: v for k, v in params.items() if k in _CONNECT_KEYS and v},
                                        autocommit=True)
            self.info = TypeInfo.fetch(self.conn, "vector")
        return self.conn

    def run(self, fn, done) -> Future:
        def work():
            try:
                conn = self._connect()
                try:
                    with _VectorCursor(conn) as cur:
                        register_vector_info(cur, self.info)
                        return fn(cur)
                except psycopg.OperationalError:
                    conn.close()  # reconnect next time
                    raise
            finally:
                done()  # back in the pool before the caller sees the result

        return self.executor.submit(work)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.executor.shutdown(wait=False)


#: At most this many extra connections per process; a search finding all of them busy
#: (a threaded server under load, where both cores are busy anyway) runs serially.
MAX_BESIDE_CONNECTIONS = 4
_idle: list[_Beside] = []
_all_beside: list[_Beside] = []
_beside_lock = threading.Lock()


def run_beside(fn) -> Future | None:
    """Run ``fn(cursor)`` on an idle extra connection of this process, in that connection's
    thread; None when all ``MAX_BESIDE_CONNECTIONS`` are busy. The connection is made on
    first use and goes back to the pool when ``fn`` is done."""
    with _beside_lock:
        if _idle:
            helper = _idle.pop()
        elif len(_all_beside) < MAX_BESIDE_CONNECTIONS:
            helper = _Beside()
            _all_beside.append(helper)
        else:
            return None

    def release():
        with _beside_lock:
            if helper in _all_beside:
                _idle.append(helper)

    return helper.run(fn, release)


@atexit.register
def close_beside_connections() -> None:
    """Close every extra connection (at exit, and before a test database is dropped)."""
    with _beside_lock:
        for helper in _all_beside:
            helper.close()
        _all_beside.clear()
        _idle.clear()


CHUNK_COPY_COLUMNS = ("tenant_id", "document_id", "position", "text", "token_count", "provenance",
                      "embedding", "embedding_model", "search_text")
CHUNK_COPY_TYPES = ("varchar", "int8", "int4", "text", "int4", "jsonb", "vector", "varchar", "text")


def copy_chunks(rows) -> int:
    """Bulk-load chunk rows (tuples in ``CHUNK_COPY_COLUMNS`` order; provenance a
    ``psycopg.types.json.Jsonb``, embedding a float32 numpy vector) with binary COPY:
    ~100k rows/s against ~3k for text COPY (MEASURED.md)."""
    count = 0
    with vector_cursor() as cur:
        sql = f"COPY knowledge_chunk ({', '.join(CHUNK_COPY_COLUMNS)}) FROM STDIN WITH (FORMAT BINARY)"
        with cur.copy(sql) as copy:
            copy.set_types(list(CHUNK_COPY_TYPES))
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


#: pgvector's limit for an HNSW index on ``vector`` columns.
HNSW_MAX_DIMENSIONS = 2000


def stored_dimensions(cur=None) -> int:
    """The size of the chunk vectors the database holds: the ``vector(n)`` column's n."""
    sql = ("SELECT atttypmod FROM pg_attribute "
           "WHERE attrelid = 'knowledge_chunk'::regclass AND attname = 'embedding'")
    if cur is not None:
        cur.execute(sql)
        return int(cur.fetchone()[0])
    with connection.cursor() as wrapper:
        wrapper.execute(sql)
        return int(wrapper.fetchone()[0])
