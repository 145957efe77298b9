"""Retrieval quality on FacQA (Indonesian factoid QA, ../shared/corpus/facqa/valid.csv).

Every distinct passage is uploaded as a .txt document through the real ingestion
path into one tenant; every question is asked through ``chunk_search`` with
vector only, keyword only and hybrid; a question is answered when the passage it
came from is retrieved. Prints recall@1, recall@5, MRR@10 and nDCG@10 (one
relevant passage per question, so nDCG@10 = 1/log2(1 + rank)).

Passages that differ only in spacing around punctuation ("10 , 08" vs "10,08")
are one passage here (same tokens once joined).

    python benchmarks/bench_knowledge_quality.py [--provider local|fake] [--sweep]

``--sweep`` re-fuses the returned per-method scores offline over a grid of
weights on the odd-numbered questions (the tuning split) and reports the best
setting on the even-numbered ones (held out): how FUSION_PROFILES was chosen.

A second table asks a shop FAQ, written once in Indonesian and once in English
(``knowledge/tests/shop_faq.py``), its customers' questions in either language:
how many find the answering entry first, and first and relevant (the agent answers
from it), and how many unanswerable questions find something relevant.
"""

from __future__ import annotations

import argparse
import ast
import csv
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _kb_setup import CORPUS, fresh_tenant, setup_django, table

TENANT = "bench-facqa"


def load_facqa():
    with open(CORPUS / "facqa" / "valid.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    passages: dict[str, str] = {}
    questions = []
    for row in rows:
        tokens = ast.literal_eval(row["passage"])
        key = "".join(tokens)
        passages.setdefault(key, " ".join(tokens))
        questions.append((" ".join(ast.literal_eval(row["question"])), key))
    return passages, questions


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "R@1": sum(1 for r in ranks if r == 1) / n,
        "R@5": sum(1 for r in ranks if r and r <= 5) / n,
        "MRR@10": sum(1 / r for r in ranks if r and r <= 10) / n,
        "nDCG@10": sum(1 / math.log2(1 + r) for r in ranks if r and r <= 10) / n,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provider", default=os.environ.get("BENCH_EMBEDDING_PROVIDER", "local"))
    parser.add_argument("--sweep", action="store_true")
    args, _ = parser.parse_known_args(argv)  # make bench passes its own filter words
    setup_django(args.provider)

    from django.conf import settings

    settings.KB_SYNC_MAX_CHUNKS = 10_000
    from agent_project.lib.embeddings import get_embedder
    from knowledge import ranking
    from knowledge.selectors import chunk_search
    from knowledge.services import document_upload
    from tenants.scoping import tenant_scope

    passages, questions = load_facqa()
    tenant = fresh_tenant(TENANT)
    embedder = get_embedder()
    doc_of_key = {}
    t0 = time.monotonic()
    with tenant_scope(tenant):
        for i, (key, text) in enumerate(passages.items()):
            result = document_upload(tenant=tenant, filename=f"facqa-{i:04d}.txt", data=text.encode())
            doc_of_key[key] = result.document.pk
    print(f"embedder {embedder.name}: {len(passages)} passages ingested in {time.monotonic() - t0:.1f}s, "
          f"{len(questions)} questions")

    results = {}
    raw_hits = []
    with tenant_scope(tenant):
        for label, methods in (("vector", ("vector",)), ("keyword", ("keyword",)), ("hybrid", ("keyword", "vector"))):
            ranks = []
            for question, key in questions:
                hits = chunk_search(tenant=tenant, query=question, k=10 if label != "hybrid" else 50, methods=methods)
                if label == "hybrid":
                    raw_hits.append((hits, doc_of_key[key]))
                docs = [h.document_id for h in hits[:10]]
                ranks.append(docs.index(doc_of_key[key]) + 1 if doc_of_key[key] in docs else None)
            results[label] = metrics(ranks)
    names = ["R@1", "R@5", "MRR@10", "nDCG@10"]
    print(table(["method", *names], [[label, *(m[n] for n in names)] for label, m in results.items()]))
    beats = all(results["hybrid"][n] > max(results["vector"][n], results["keyword"][n]) for n in names)
    print(f"hybrid above both single methods on every metric: {'yes' if beats else 'no'}")
    shop_faq_table()

    if args.sweep:
        profile = ranking.fusion_profile(embedder.name)

        def evaluate(subset, p, seat=ranking.SEMANTIC_SEAT):
            ranks = []
            for hits, relevant in subset:
                ranked = ranking.rank_fused(
                    [(h.scores["keyword"], ranking.vector_score(h.scores["vector"], p), h.scores["bm25"])
                     for h in hits], p, semantic_seat=seat)
                docs = [hits[i].document_id for i, _ in ranked[:10]]
                ranks.append(docs.index(relevant) + 1 if relevant in docs else None)
            return metrics(ranks)

        tune, held = raw_hits[1::2], raw_hits[0::2]
        grid = [ranking.FusionProfile(w / 100, 1 - w / 100, f, c, band)
                for w in range(50, 100, 5) for f, c in ((0.0, 1.0), (0.15, 0.75)) for band in (None, 0.01, 0.02, 0.03, 0.05, 0.1)]
        best = max(grid, key=lambda p: evaluate(tune, p)["nDCG@10"])
        keyword_only = ranking.FusionProfile(1.0, 0.0, 0.15, 0.75)
        rows = [[label, *(evaluate(split, p, seat)[n] for n in names)]
                for label, p, seat, split in (
                    ("keyword only, held-out", keyword_only, None, held),
                    ("current profile, held-out", profile, ranking.SEMANTIC_SEAT, held),
                    ("current profile without the semantic seat, held-out", profile, None, held),
                    ("best on tune split, held-out", best, ranking.SEMANTIC_SEAT, held))]
        print(f"current profile: {profile}\nbest on tune split: {best}")
        print(table(["fusion (odd questions tune, even held out)", *names], rows))


def shop_faq_table() -> None:
    from knowledge.selectors import RELEVANCE_THRESHOLD, chunk_search
    from knowledge.services import entries_upsert
    from knowledge.tests import shop_faq
    from tenants.scoping import tenant_scope

    rows = []
    for kb in ("id", "en"):
        tenant = fresh_tenant(f"bench-shop-faq-{kb}")
        with tenant_scope(tenant):
            entries_upsert(tenant=tenant, entries=[{"title": t, "content": c} for t, c in shop_faq.ENTRIES[kb]])
            for asked in ("id", "en"):
                first = relevant = 0
                for question, entry in shop_faq.QUESTIONS[asked]:
                    top = chunk_search(tenant=tenant, query=question, k=1)[0]
                    right = top.title == shop_faq.answer(entry, kb)
                    first += right
                    relevant += right and top.score >= RELEVANCE_THRESHOLD
                false = sum(chunk_search(tenant=tenant, query=q, k=1)[0].score >= RELEVANCE_THRESHOLD
                            for q in shop_faq.UNANSWERED[asked])
                rows.append([f"{asked} questions, {kb} FAQ", len(shop_faq.QUESTIONS[asked]), first, relevant,
                             f"{false} of {len(shop_faq.UNANSWERED[asked])}"])
        tenant.delete()
    print("shop FAQ (8 entries) asked in either language, hybrid, k=1:")
    print(table(["questions", "asked", "answer first", "first and relevant", "unanswerable found relevant"], rows))


if __name__ == "__main__":
    main()
