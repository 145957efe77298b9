"""Raw psycopg access where the ORM is too slow: binary COPY of chunks and
vector parameters/results as numpy arrays (pgvector's psycopg adapters,
registered per cursor so the ORM's own handling of VectorField is untouched)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from contextlib import contextmanager

import psycopg
from django.db import connection
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

logger = logging.getLogger(__name__)

_type_info: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _VectorCursor(psycopg.Cursor):
    """Server-side parameter binding, so a ``%b`` vector travels as 1.5 kB of binary
    instead of being formatted as text (Django's client-side cursors made 384 float
    strings per parameter: ~0.4 ms each). Never prepared: a prepared statement's
    generic plan ignores the tenant's size, which the vector plan depends on."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=False, binary=binary)


#: Session settings each extra connection already has: {psycopg connection: {name: value}}.
_session_settings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def ensure_session_settings(cur, settings: dict[str, str]) -> None:
    """Set ``settings`` for the session of ``cur``'s connection unless they are already
    set: one round trip the first time, none after. Only for autocommit connections
    (the extra ones below): inside a transaction that rolls back, a session setting
    reverts without this memo knowing."""
    have = _session_settings.setdefault(cur.connection, {})
    changed = {name: value for name, value in settings.items() if have.get(name) != value}
    if changed:
        cur.execute("SELECT " + ", ".join("set_config(%s, %s, false)" for _ in changed),
                    [item for pair in changed.items() for item in pair])
        have.update(changed)


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


class _Extra:
    """One extra connection of this process (autocommit, so it sees what is committed;
    callers inside a transaction must not use it: it would not see their writes)."""

    def __init__(self):
        self.conn: psycopg.Connection | None = None
        self.info = None

    def connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            params = connection.get_connection_params()
            self.conn = psycopg.connect(**{k: v for k, v in params.items() if k in _CONNECT_KEYS and v},
                                        autocommit=True)
            self.info = TypeInfo.fetch(self.conn, "vector")
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class BesideQuery:
    """A query running on an extra connection while the caller goes on with Django's: a
    big tenant's HNSW search beside its keyword search (two PostgreSQL backends, two
    cores). Sent in pipeline mode, so libpq hands it to the server and returns at once;
    ``result()`` reads its rows. No thread: a helper thread waited ~0.4 ms for the GIL
    before it could send (measured), and that was on the search's critical path.
    ``close()`` (idempotent, also on ``with`` exit) drops an unread result and returns
    the connection to the pool; a caller must close every query it sent."""

    def __init__(self, extra: _Extra, cursor, pipeline):
        self._extra, self._cursor, self._pipeline = extra, cursor, pipeline
        self._rows: list[tuple] | None = None
        self._open = True

    def result(self) -> list[tuple]:
        if self._rows is None:
            if not self._open:
                raise RuntimeError("the query was closed before its result was read")
            try:
                self._rows = self._cursor.fetchall()
            except psycopg.Error:
                self._finish(broken=True)
                raise
            self._finish()
        return self._rows

    def close(self) -> None:
        if self._open:
            self._finish()

    def _finish(self, broken: bool = False) -> None:
        self._open = False
        try:
            self._pipeline.__exit__(None, None, None)  # syncs: an unread result is read and dropped
            self._cursor.close()
        except psycopg.Error:
            broken = True
        if broken:
            self._extra.close()  # reconnect next time
        _check_in(self._extra)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: At most this many extra connections per process; a search finding all of them busy
#: (a threaded server under load, where both cores are busy anyway) runs serially.
MAX_BESIDE_CONNECTIONS = 4
_idle: list[_Extra] = []
_all_beside: list[_Extra] = []
_beside_lock = threading.Lock()


def _check_in(extra: _Extra) -> None:
    with _beside_lock:
        if extra in _all_beside:
            _idle.append(extra)


def send_beside(sql: str, params: list, *, session: dict[str, str] | None = None) -> BesideQuery | None:
    """Send ``sql`` on an idle extra connection of this process (made on first use), after
    setting ``session`` there (``ensure_session_settings``); read it with ``result()``.
    None when all ``MAX_BESIDE_CONNECTIONS`` are busy or the connection fails: the caller
    then runs the query itself."""
    with _beside_lock:
        if _idle:
            extra = _idle.pop()
        elif len(_all_beside) < MAX_BESIDE_CONNECTIONS:
            extra = _Extra()
            _all_beside.append(extra)
        else:
            return None
    try:
        conn = extra.connect()
        cursor = _VectorCursor(conn)
        register_vector_info(cursor, extra.info)
        if session:
            ensure_session_settings(cursor, session)
        pipeline = conn.pipeline()
        pipeline.__enter__()
        try:
            cursor.execute(sql, params)
        except BaseException:
            pipeline.__exit__(None, None, None)
            raise
    except psycopg.Error as exc:
        logger.warning("extra connection failed (%s); the caller searches serially", exc)
        extra.close()
        _check_in(extra)
        return None
    except BaseException:
        extra.close()
        _check_in(extra)
        raise
    return BesideQuery(extra, cursor, pipeline)


@atexit.register
def close_beside_connections() -> None:
    """Close every extra connection (at exit, and before a test database is dropped)."""
    with _beside_lock:
        for extra in _all_beside:
            extra.close()
        _all_beside.clear()
        _idle.clear()


CHUNK_COPY_COLUMNS = ("tenant_id", "document_id", "position", "text", "token_count", "provenance",
                      "embedding", "embedding_model", "search_text")
CHUNK_COPY_TYPES = ("varchar", "int8", "int4", "text", "int4", "jsonb", "vector", "varchar", "text")

#: The HNSW index as the model declares it (migration 0009): cosine, m 16, ef_construction 64, and only
#: the chunks of tenants big enough to search it (``Chunk.in_hnsw``).
HNSW_INDEX_SQL = ("CREATE INDEX kb_chunk_embedding_hnsw ON knowledge_chunk USING hnsw (embedding vector_cosine_ops) "
                  "WITH (m = 16, ef_construction = 64) WHERE in_hnsw")


def copy_chunks(rows, *, in_hnsw: bool = False) -> int:
    """Bulk-load chunk rows (tuples in ``CHUNK_COPY_COLUMNS`` order; provenance a
    ``psycopg.types.json.Jsonb``, embedding a float32 numpy vector) with binary COPY:
    ~100k rows/s against ~3k for text COPY (MEASURED.md). ``in_hnsw``: the rows go into
    the HNSW graph (their tenant's ``CorpusStats.in_hnsw``)."""
    count = 0
    with vector_cursor() as cur:
        columns = (*CHUNK_COPY_COLUMNS, "in_hnsw")
        sql = f"COPY knowledge_chunk ({', '.join(columns)}) FROM STDIN WITH (FORMAT BINARY)"
        with cur.copy(sql) as copy:
            copy.set_types([*CHUNK_COPY_TYPES, "bool"])
            for row in rows:
                copy.write_row((*row, in_hnsw))
                count += 1
    return count


#: pgvector's limit for an HNSW index on ``vector`` columns.
HNSW_MAX_DIMENSIONS = 2000


#: How long a process trusts a column size that matched its embedder (``vectors_comparable``).
MATCHING_DIMENSIONS_TTL_SECONDS = 30.0
_comparable: dict[int, float] = {}  # embedder size -> monotonic time it last matched the column


def vectors_comparable(dimensions: int) -> bool:
    """Whether query vectors of ``dimensions`` can be compared with the stored ones.

    Not after ``EMBEDDING_DIMENSIONS`` changed and before ``kb_reembed --all-tenants --resize``
    has finished: the search then answers by keyword (as when the embedder is down) instead of
    failing on pgvector's "different vector dimensions". A match is trusted for
    ``MATCHING_DIMENSIONS_TTL_SECONDS``; a mismatch is asked again on every search (~0.2 ms,
    only in that window), so vector search returns as soon as the resize commits."""
    checked = _comparable.get(dimensions)
    now = time.monotonic()
    if checked is not None and now - checked < MATCHING_DIMENSIONS_TTL_SECONDS:
        return True
    if stored_dimensions() == dimensions:
        _comparable[dimensions] = now
        return True
    _comparable.pop(dimensions, None)
    return False


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
