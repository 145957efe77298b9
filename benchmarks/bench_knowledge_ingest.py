"""Ingestion throughput: chunks per second end to end (read file → parse → chunk
→ embed → analyse → binary COPY + term statistics, one transaction per file)
against the bare encode rate of the same embedder on the same chunk texts, in the
same run. The ratio is our overhead on top of the model.

Files are Markdown built from the FacQA passages (one heading per passage),
written to a temporary folder and imported with the same service ``kb_import``
uses. Bare encode and import alternate file by file so machine noise hits both.

    python benchmarks/bench_knowledge_ingest.py [--provider local|fake] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _kb_setup import fresh_tenant, setup_django, table
from bench_knowledge_quality import load_facqa

PER_FILE = 16


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provider", default=os.environ.get("BENCH_EMBEDDING_PROVIDER", "local"))
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args(argv)  # make bench passes its own filter words
    setup_django(args.provider)
    from agent_project.lib.embeddings import get_embedder
    from knowledge import analysis
    from knowledge.ingestion.parsers import parse_file
    from knowledge.services import EMBED_BATCH, chunk_drafts, document_import
    from tenants.scoping import tenant_scope

    passages = list(load_facqa()[0].values())
    embedder = get_embedder()
    embedder.embed_documents(["warm up the model"])
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for start in range(0, len(passages), PER_FILE):
            path = Path(tmp) / f"berita-{start // PER_FILE:03d}.md"
            body = "\n\n".join(f"# Berita {start + i}\n\n{p}" for i, p in enumerate(passages[start:start + PER_FILE]))
            path.write_text(body, encoding="utf-8")
            files.append(path)
        # The same calls the import makes: one file's chunks in batches of EMBED_BATCH.
        per_file = [[d.text for d in chunk_drafts(parse_file(f.read_bytes(), f.name)[1])] for f in files]
        texts = [t for batch in per_file for t in batch]

        encode_s, e2e_s = [], []
        for round_no in range(args.rounds):
            tenant = fresh_tenant(f"bench-ingest-{round_no}")
            analysis.stem.cache_clear()  # every round stems its words as a new document's would be
            encode, e2e, chunks = 0.0, 0.0, 0
            with tenant_scope(tenant):
                # File by file, bare encode then import, so the machine's noise hits both alike.
                for path, batch in zip(files, per_file):
                    t0 = time.perf_counter()
                    for i in range(0, len(batch), EMBED_BATCH):
                        embedder.embed_documents(batch[i:i + EMBED_BATCH])
                    encode += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    chunks += document_import(tenant=tenant, name=str(path), data=path.read_bytes()).document.chunk_count
                    e2e += time.perf_counter() - t0
            assert chunks == len(texts), (chunks, len(texts))
            encode_s.append(encode)
            e2e_s.append(e2e)
            tenant.delete()

    rows = [[f"round {i + 1}", len(texts), len(texts) / e, len(texts) / s, f"{(s / e - 1) * 100:+.1f}%"]
            for i, (e, s) in enumerate(zip(encode_s, e2e_s))]
    total_e, total_s = sum(encode_s), sum(e2e_s)
    rows.append(["all rounds", len(texts) * args.rounds, len(texts) * args.rounds / total_e,
                 len(texts) * args.rounds / total_s, f"{(total_s / total_e - 1) * 100:+.1f}%"])
    ratios = sorted(s / e for e, s in zip(encode_s, e2e_s))
    rows.append(["median round", len(texts), "", "", f"{(ratios[len(ratios) // 2] - 1) * 100:+.1f}%"])
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM knowledge_chunk")
        in_table = cur.fetchone()[0]
    print(f"embedder {embedder.name}, {len(files)} Markdown files, {len(texts)} chunks per round, "
          f"{in_table} chunks already in the table (its HNSW index is updated on every insert)")
    print(table(["", "chunks", "bare encode chunks/s", "end-to-end chunks/s", "overhead"], rows))


if __name__ == "__main__":
    main()
