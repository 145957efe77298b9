"""Ingestion throughput: chunks per second end to end (read file → parse → chunk
→ embed → analyse → binary COPY + term statistics, one transaction per file)
against the bare encode rate of the same embedder on the same chunk texts, in the
same run. The ratio is our overhead on top of the model.

Files are Markdown built from the FacQA passages (one heading per passage),
written to a temporary folder and imported two ways: one file after another
(``document_import``, as an upload or a task does it) and as ``kb_import`` runs
it (``documents_import``: the next file is embedded while one is written, with
embedders that allow it; torch embeds two files at once on one thread each, so a third
table compares kb_import with the bare encode run that way too). Each round times the bare encode and both imports, in rotating order.
Autovacuum of the chunk and term tables is held off while the rounds are timed (``autovacuum_held``): the dead
rows are the benchmark's own, from deleting each round's tenant.
A further table imports the same passages as one large file (a long document uploaded
once) against the bare encode of its own batches, and the last as API entries
(``/kb/upsert``, 100 per request).

    python benchmarks/bench_knowledge_ingest.py [--provider local|fake] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _kb_setup import fresh_tenant, setup_django, table
from bench_knowledge_quality import load_facqa

PER_FILE = 16


@contextlib.contextmanager
def autovacuum_held(*tables: str):
    """No autovacuum of ``tables`` while the rounds are timed, one VACUUM before and after. Each round deletes
    the tenant it imported into, and those dead rows (4,000-5,000 a run, over the chunk table's trigger of
    ~3,000: migration 0007) started a VACUUM of the 200k-chunk table and its HNSW index, seconds of a core,
    inside a random round: an autovacuum of knowledge_chunk ran during a run of this benchmark, whose rounds
    ranged from -14.5% to +18.3%. Importing itself only inserts."""
    from django.db import connection

    with connection.cursor() as cur:
        for name in tables:
            cur.execute(f"VACUUM (ANALYZE) {name}")
            cur.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = off)")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            for name in tables:
                cur.execute(f"ALTER TABLE {name} RESET (autovacuum_enabled)")
                cur.execute(f"VACUUM (ANALYZE) {name}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provider", default=os.environ.get("BENCH_EMBEDDING_PROVIDER", "local"))
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args(argv)  # make bench passes its own filter words
    setup_django(args.provider)
    from agent_project.lib.embeddings import get_embedder
    from knowledge import analysis
    from knowledge.ingestion.parsers import parse_file
    from knowledge.services import EMBED_BATCH, chunk_drafts, document_import, documents_import
    from tenants.scoping import tenant_scope

    passages = list(dict.fromkeys(p for _, p in load_facqa()[1]["valid"]))  # valid's 273 passages
    embedder = get_embedder()
    embedder.embed_documents(["warm up the model"])
    with tempfile.TemporaryDirectory() as tmp, autovacuum_held("knowledge_chunk", "knowledge_term"):
        files = []
        for start in range(0, len(passages), PER_FILE):
            path = Path(tmp) / f"berita-{start // PER_FILE:03d}.md"
            body = "\n\n".join(f"# Berita {start + i}\n\n{p}" for i, p in enumerate(passages[start:start + PER_FILE]))
            path.write_text(body, encoding="utf-8")
            files.append(path)
        # The same calls the import makes: one file's chunks in batches of EMBED_BATCH.
        per_file = [[d.text for d in chunk_drafts(parse_file(f.read_bytes(), f.name)[1])] for f in files]
        texts = [t for batch in per_file for t in batch]

        def import_all(tenant, bulk: bool) -> int:
            if bulk:  # what kb_import runs
                return sum(done.result.document.chunk_count for done in documents_import(tenant=tenant, paths=files))
            return sum(document_import(tenant=tenant, name=str(p), data=p.read_bytes()).document.chunk_count
                       for p in files)

        def encode_file(batch):
            for i in range(0, len(batch), EMBED_BATCH):
                embedder.embed_documents(batch[i:i + EMBED_BATCH])

        with embedder.import_streams() as streams:
            pass
        times = {"encode": [], "one_by_one": [], "bulk": [], "encode_streams": []}
        for round_no in range(args.rounds):
            # The order rotates from round to round so the machine's drift hits all of them alike.
            order = ["encode", "one_by_one", "bulk"] + (["encode_streams"] if streams > 1 else [])
            order = order[round_no % len(order):] + order[:round_no % len(order)]
            for what in order:
                t0 = time.perf_counter()
                if what == "encode":  # the calls the import makes: each file's chunks in batches of EMBED_BATCH
                    for batch in per_file:
                        encode_file(batch)
                    chunks = len(texts)
                elif what == "encode_streams":  # the same, as kb_import runs the model: files on parallel streams
                    with embedder.import_streams() as n, ThreadPoolExecutor(
                            n, initializer=embedder.import_thread_setup) as pool:
                        list(pool.map(encode_file, per_file))
                    chunks = len(texts)
                else:
                    tenant = fresh_tenant(f"bench-ingest-{what}")
                    analysis.stem.cache_clear()  # every round stems its words as a new document's would be
                    t0 = time.perf_counter()
                    with tenant_scope(tenant):
                        chunks = import_all(tenant, bulk=what == "bulk")
                times[what].append(time.perf_counter() - t0)
                assert chunks == len(texts), (what, chunks, len(texts))
                if what in ("one_by_one", "bulk"):
                    tenant.delete()

        # The same passages as one large file (an upload of a long document): the per-file
        # costs (a transaction, the document row, the file, term statistics) are paid once.
        big = Path(tmp) / "semua-berita.md"
        big.write_text("\n\n".join(f.read_text(encoding="utf-8") for f in files), encoding="utf-8")
        big_texts = [d.text for d in chunk_drafts(parse_file(big.read_bytes(), big.name)[1])]
        def against_encode(tenant_id: str, encode, ingest) -> dict[str, list[float]]:
            """Rounds of ``encode()`` and ``ingest(tenant)`` (into a new tenant, stemmer cache
            emptied), alternating which goes first."""
            times = {"encode": [], "import": []}
            for round_no in range(args.rounds):
                for what in (["encode", "import"] if round_no % 2 == 0 else ["import", "encode"]):
                    tenant = fresh_tenant(tenant_id) if what == "import" else None
                    analysis.stem.cache_clear()
                    t0 = time.perf_counter()
                    if tenant is None:
                        encode()
                    else:
                        with tenant_scope(tenant):
                            ingest(tenant)
                    times[what].append(time.perf_counter() - t0)
                    if tenant is not None:
                        tenant.delete()
            return times

        def import_big(tenant):
            chunks = document_import(tenant=tenant, name=str(big), data=big.read_bytes()).document.chunk_count
            assert chunks == len(big_texts), (chunks, len(big_texts))

        big_times = against_encode("bench-ingest-large", lambda: encode_file(big_texts), import_big)

        # The same passages as API entries (``POST /kb/upsert`` with ``entries``, at most
        # MAX_ENTRIES per request, through the service the view calls): each is one document.
        from knowledge.api import MAX_ENTRIES
        from knowledge.services import entries_upsert, entry_sections

        entries = [{"title": f"Berita {i}", "content": p, "external_id": f"berita-{i}"} for i, p in enumerate(passages)]
        requests = [entries[i:i + MAX_ENTRIES] for i in range(0, len(entries), MAX_ENTRIES)]
        entry_texts = [[d.text for e in batch for d in chunk_drafts(entry_sections(e["title"], e["content"]))]
                       for batch in requests]

        def upsert_all(tenant):
            stored = sum(len(entries_upsert(tenant=tenant, entries=batch)) for batch in requests)
            assert stored == len(entries), stored

        # the encode: each request's chunks in batches of EMBED_BATCH, as the upsert sends them
        upsert_times = against_encode("bench-ingest-upsert", lambda: [encode_file(t) for t in entry_texts], upsert_all)

    def overhead(seconds, encode):
        return f"{(seconds / encode - 1) * 100:+.1f}%"

    rows = []
    for i, (e, s, p) in enumerate(zip(times["encode"], times["one_by_one"], times["bulk"])):
        rows.append([f"round {i + 1}", len(texts), len(texts) / e, len(texts) / s, overhead(s, e),
                     len(texts) / p, overhead(p, e)])
    total = {k: sum(v) for k, v in times.items()}
    n = len(texts) * args.rounds
    rows.append(["all rounds", n, n / total["encode"], n / total["one_by_one"],
                 overhead(total["one_by_one"], total["encode"]), n / total["bulk"],
                 overhead(total["bulk"], total["encode"])])
    median = {k: sorted(v[i] / times["encode"][i] for i in range(args.rounds))[args.rounds // 2]
              for k, v in times.items() if k in ("one_by_one", "bulk")}
    rows.append(["median round", len(texts), "", "", overhead(median["one_by_one"], 1), "",
                 overhead(median["bulk"], 1)])
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE in_hnsw) FROM knowledge_chunk")
        in_table, in_graph = cur.fetchone()
    print(f"embedder {embedder.name}, {len(files)} Markdown files, {len(texts)} chunks per round, "
          f"{in_table} chunks already in the table, {in_graph} of them in the HNSW graph (big tenants' only: "
          f"a tenant this size is searched exactly, and its chunks stay out of the graph)")
    print(table(["", "chunks", "bare encode chunks/s", "one file at a time chunks/s", "overhead",
                 "kb_import chunks/s", "overhead"], rows))
    if times["encode_streams"]:
        # kb_import runs this model as parallel streams: its fair baseline is the bare encode run the same way.
        rows = [[f"round {i + 1}", len(texts), len(texts) / e, len(texts) / p, overhead(p, e)]
                for i, (e, p) in enumerate(zip(times["encode_streams"], times["bulk"]))]
        total_streams = sum(times["encode_streams"])
        rows.append(["all rounds", n, n / total_streams, n / total["bulk"], overhead(total["bulk"], total_streams)])
        ratio = sorted(p / e for e, p in zip(times["encode_streams"], times["bulk"]))[args.rounds // 2]
        rows.append(["median round", len(texts), "", "", overhead(ratio, 1)])
        print(f"kb_import embeds {streams} files at once (import_streams): against the bare encode run the same way")
        print(table(["", "chunks", f"bare encode, {streams} streams chunks/s", "kb_import chunks/s", "overhead"],
                    rows))
    rows = [[f"round {i + 1}", len(big_texts), len(big_texts) / e, len(big_texts) / s, overhead(s, e)]
            for i, (e, s) in enumerate(zip(big_times["encode"], big_times["import"]))]
    rows.append(["all rounds", len(big_texts) * args.rounds, len(big_texts) * args.rounds / sum(big_times["encode"]),
                 len(big_texts) * args.rounds / sum(big_times["import"]),
                 overhead(sum(big_times["import"]), sum(big_times["encode"]))])
    ratios = sorted(s / e for e, s in zip(big_times["encode"], big_times["import"]))
    rows.append(["median round", len(big_texts), "", "", overhead(ratios[args.rounds // 2], 1)])
    print(f"the same passages as one Markdown file ({len(big_texts)} chunks), imported as an upload would be:")
    print(table(["", "chunks", "bare encode chunks/s", "import chunks/s", "overhead"], rows))
    upsert_chunks = sum(len(t) for t in entry_texts)
    rows = [[f"round {i + 1}", upsert_chunks, upsert_chunks / e, upsert_chunks / u, overhead(u, e)]
            for i, (e, u) in enumerate(zip(upsert_times["encode"], upsert_times["import"]))]
    rows.append(["all rounds", upsert_chunks * args.rounds, upsert_chunks * args.rounds / sum(upsert_times["encode"]),
                 upsert_chunks * args.rounds / sum(upsert_times["import"]),
                 overhead(sum(upsert_times["import"]), sum(upsert_times["encode"]))])
    ratios = sorted(u / e for e, u in zip(upsert_times["encode"], upsert_times["import"]))
    rows.append(["median round", upsert_chunks, "", "", overhead(ratios[args.rounds // 2], 1)])
    print(f"the same passages as {len(entries)} API entries, {MAX_ENTRIES} per request (POST /kb/upsert with entries):")
    print(table(["", "chunks", "bare encode chunks/s", "upsert chunks/s", "overhead"], rows))


if __name__ == "__main__":
    main()
