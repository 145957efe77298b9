"""The embedded server's pgvector runs on this CPU, whatever the wheel was compiled for."""

import pytest
from django.db import connection

from agent_project.lib import pgvector_portable

V4 = "avx avx2 avx512f avx512cd avx512bw avx512dq avx512vl"


@pytest.mark.parametrize(("machine", "flags", "safe"), [
    ("x86_64", V4, True),  # what the wheel was built on
    ("x86_64", "fma sse4_2 avx f16c avx2 bmi2", False),  # AMD EPYC without AVX-512: SIGILL in HNSW
    ("x86_64", "avx2 avx512f", False),  # AVX-512 foundation only: the build may use VL/BW/DQ
    ("x86_64", "", False),
    ("aarch64", "fp asimd", True),  # nothing known to fix on ARM
])
def test_which_cpus_need_the_portable_build(machine, flags, safe):
    cpuinfo = f"processor\t: 0\nflags\t\t: {flags}\n" if flags else "processor\t: 0\n"
    assert pgvector_portable.cpu_runs_wheel_build(cpuinfo=cpuinfo, machine=machine) is safe


def test_the_installed_library_is_the_portable_one_where_needed():
    library = pgvector_portable._pg_config("pkglibdir") / "vector.so"
    if not pgvector_portable.cpu_runs_wheel_build():
        assert pgvector_portable.is_portable(library)
    assert pgvector_portable.ensure_portable() is False  # checked, nothing left to do


@pytest.mark.django_db
def test_hnsw_insert_and_search_run_in_the_server():
    # What crashed the backend with "Illegal instruction" before the portable build.
    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE hnsw_probe (id serial, e vector(4))")
        cur.execute("CREATE INDEX ON hnsw_probe USING hnsw (e vector_cosine_ops)")
        cur.execute("INSERT INTO hnsw_probe (e) SELECT ARRAY[i, 1, 2, 3]::vector FROM generate_series(1, 50) i")
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SELECT id FROM hnsw_probe ORDER BY e <=> '[50,1,2,3]' LIMIT 3")
        assert [row[0] for row in cur.fetchall()][0] == 50
