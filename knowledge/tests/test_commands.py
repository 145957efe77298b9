"""kb_import (summary, skips, exit code) and kb_reembed."""

from __future__ import annotations

import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import assert_error
from knowledge.models import Chunk, CorpusStats, Document

from .conftest import CORPUS

pytestmark = pytest.mark.django_db


def run_command(name, *args):
    """(exit code, stdout) of a command that exits non-zero by SystemExit."""
    out = StringIO()
    try:
        call_command(name, *args, "--no-progress", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def run_import(*args):
    return run_command("kb_import", *args)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "kb"
    (root / "sub").mkdir(parents=True)
    (root / "faq.md").write_text("# Ongkir\nGratis ongkir di atas 200 ribu.\n\n# Jam\nBuka jam 9.")
    (root / "sub" / "harga.csv").write_text("Produk,Harga\nKopi,85000\n")
    (root / "sub" / "notes.docx").write_bytes(b"ignored: unsupported type")
    return root


def test_import_folder_then_rerun_skips_unchanged(folder, tenant_a, scoped):
    code, out = run_import("--tenant", tenant_a.id, str(folder))
    assert code == 0, out
    assert "imported 2 (created 2, updated 0), skipped 0 unchanged, failed 0; 1 file(s) of other types" in out
    code, out = run_import("--tenant", tenant_a.id, str(folder))
    assert code == 0 and "imported 0 (created 0, updated 0), skipped 2 unchanged, failed 0" in out
    (folder / "faq.md").write_text("# Ongkir\nGratis ongkir di atas 300 ribu.")
    code, out = run_import("--tenant", tenant_a.id, str(folder))
    assert "imported 1 (created 0, updated 1), skipped 1 unchanged" in out
    with scoped(tenant_a):
        assert Document.objects.count() == 2
        assert Document.objects.get(title="faq").source_kind == "import"
        assert "300 ribu" in Chunk.objects.get(document__title="faq").text


@pytest.mark.corpus
def test_failures_are_reported_and_exit_non_zero_but_the_rest_is_imported(folder, tenant_a, scoped):
    shutil.copy(CORPUS / "pdf" / "libreoffice-writer-password.pdf", folder / "locked.pdf")
    (folder / "broken.xlsx").write_bytes(b"not a zip")
    code, out = run_import("--tenant", tenant_a.id, str(folder), str(CORPUS / "pdf" / "minimal-document.pdf"))
    assert code == 1
    assert "failed 2" in out and "imported 3" in out
    assert "pdf_encrypted" in out and "file_unreadable" in out
    with scoped(tenant_a):
        assert Document.objects.filter(status="ready").count() == 3


def test_a_file_named_on_the_command_line_is_tried_even_if_unsupported(folder, tenant_a):
    code, out = run_import("--tenant", tenant_a.id, str(folder / "sub" / "notes.docx"), str(folder / "faq.md"))
    assert code == 1 and "failed 1" in out and "imported 1" in out
    assert "notes.docx" in out and "unsupported_file_type" in out


@pytest.mark.parametrize("overlap", [True, False], ids=["beside-the-writes", "in-place"])
def test_a_file_that_fails_unexpectedly_is_reported_and_the_rest_go_on(folder, tenant_a, scoped, monkeypatch,
                                                                       overlap):
    from knowledge.services import files

    monkeypatch.setattr(files.get_embedder().__class__, "overlaps_writes", overlap)
    store = files._store_import

    def flaky(**kwargs):
        if kwargs["name"].endswith("faq.md"):
            raise RuntimeError("boom")  # e.g. a database error on one file's rows
        return store(**kwargs)

    monkeypatch.setattr(files, "_store_import", flaky)
    code, out = run_import("--tenant", tenant_a.id, str(folder))
    assert code == 1 and "failed 1" in out and "RuntimeError: boom" in out and "imported 1" in out
    with scoped(tenant_a):
        assert list(Document.objects.values_list("title", flat=True)) == ["harga"]


@pytest.mark.parametrize("overlap,streams", [(True, 1), (False, 1), (False, 2)],
                         ids=["beside-the-writes", "in-place", "two-streams"])
def test_identical_files_in_one_run_are_stored_once(folder, tenant_a, scoped, monkeypatch, overlap, streams):
    """The next file(s) are prepared while one is written (on worker threads when the
    embedder allows it): a copy of a file not yet stored when the copy was checked is
    still caught, inside the copy's transaction, and files are stored in path order."""
    import contextlib
    import threading

    from agent_project.lib.embeddings import get_embedder
    from knowledge.services import files

    monkeypatch.setattr(type(get_embedder()), "overlaps_writes", overlap)
    monkeypatch.setattr(type(get_embedder()), "import_streams", lambda self: contextlib.nullcontext(streams))
    (folder / "sub" / "zz-last.txt").write_text("Toko tutup hari Minggu.")
    prepare, threads = files._prepare_file, set()

    def recording(*args, **kwargs):
        threads.add(threading.current_thread().name.split("_")[0])
        return prepare(*args, **kwargs)

    monkeypatch.setattr(files, "_prepare_file", recording)
    (folder / "faq-copy.md").write_bytes((folder / "faq.md").read_bytes())
    code, out = run_import("--tenant", tenant_a.id, str(folder))
    assert code == 0 and "imported 3 (created 3, updated 0), skipped 1 unchanged" in out
    assert threads == ({"kb-import"} if overlap or streams > 1 else {"MainThread"})
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(str(folder))]
    assert rows == sorted(rows)  # in the order given (folders walked sorted), whichever file embedded first
    with scoped(tenant_a):
        assert Document.objects.count() == 3
        faq = Document.objects.get(title__startswith="faq")  # the first of the two in path order
        assert faq.title == "faq-copy" and faq.chunk_count > 0
        assert Chunk.objects.filter(document__title__startswith="faq").count() == faq.chunk_count


def test_what_the_walk_cannot_read_is_reported_as_failed(folder, tenant_a, scoped, tmp_path):
    """An unreadable folder, a broken link and a pipe were left out without a word (exit 0), and a
    pipe named on the command line made the import wait for ever. Linked folders are followed once."""
    import os

    (folder / "locked").mkdir()
    (folder / "locked" / "secret.md").write_text("# Rahasia")
    (folder / "locked").chmod(0)
    (folder / "gone.md").symlink_to(tmp_path / "missing.md")
    os.mkfifo(folder / "pipe.txt")
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "promo.md").write_text("# Promo\nDiskon 10%.")
    (folder / "linked").symlink_to(outside)
    (outside / "loop").symlink_to(folder)  # back up the tree
    try:
        code, out = run_import("--tenant", tenant_a.id, str(folder), str(folder / "pipe.txt"))
    finally:
        (folder / "locked").chmod(0o755)
    assert code == 1, out
    failed = {line.split()[0]: line for line in out.splitlines() if "  failed  " in line}
    if os.geteuid() != 0:  # root reads any folder
        assert "folder cannot be read" in failed[str(folder / "locked")]
    assert "broken symbolic link" in failed[str(folder / "gone.md")]
    assert "not a regular file" in failed[str(folder / "pipe.txt")]
    with scoped(tenant_a):
        assert {"faq", "harga", "promo"} <= set(Document.objects.values_list("title", flat=True))
        assert Document.objects.filter(title="promo").count() == 1


def test_long_paths_and_names_that_are_not_utf8_are_imported_apart(tmp_path, tenant_a, scoped):
    """Cut to the column's 200 characters, two long paths were one document, overwritten by each in
    turn; a Latin-1 name failed on every run."""
    import os

    deep = tmp_path.joinpath(*(["folder-with-a-long-name"] * 9))
    deep.mkdir(parents=True)
    (deep / "jam-buka-cabang-pertama.md").write_text("# Jam\nCabang pertama buka jam 9.")
    (deep / "jam-buka-cabang-kedua.md").write_text("# Jam\nCabang kedua buka jam 10.")
    latin = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.txt")
    with open(latin, "w") as handle:
        handle.write("Menu kopi susu.")
    code, out = run_import("--tenant", tenant_a.id, str(deep), latin)
    assert code == 0, out
    code, out = run_import("--tenant", tenant_a.id, str(deep), latin)
    assert code == 0 and "skipped 3 unchanged" in out
    with scoped(tenant_a):
        ids = list(Document.objects.values_list("external_id", flat=True))
        assert len(ids) == 3 and all(len(i) <= 200 for i in ids)
        assert Document.objects.filter(original_name="café.txt").exists()


def test_an_interrupted_import_keeps_the_files_it_finished(folder, tenant_a, scoped, monkeypatch):
    from knowledge.services import files

    for i in range(3):
        (folder / f"extra-{i}.md").write_text(f"# Info {i}\nToko cabang {i} buka jam {9 + i}.")
    store, calls = files._store_import, []

    def ctrl_c_on_the_third_file(**kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return store(**kwargs)

    monkeypatch.setattr(files, "_store_import", ctrl_c_on_the_third_file)
    code, out = run_import("--tenant", tenant_a.id, str(folder))
    assert code == 130 and "interrupted after 2 of 5 files" in out
    with scoped(tenant_a):
        assert sorted(Document.objects.values_list("original_name", flat=True)) == sorted(
            p.rsplit("/", 1)[-1] for p in calls[:2])
        assert all(d.chunk_count == d.chunks.count() > 0 for d in Document.objects.all())
    monkeypatch.setattr(files, "_store_import", store)
    code, out = run_import("--tenant", tenant_a.id, str(folder))  # a re-run finishes the job
    assert code == 0 and "imported 3 (created 3, updated 0), skipped 2 unchanged" in out


def test_import_needs_an_existing_tenant_and_paths(folder, tenant_a):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("kb_import", "--tenant", "nobody", str(folder))
    with pytest.raises(CommandError, match="no such file"):
        call_command("kb_import", "--tenant", tenant_a.id, "/does/not/exist")


def test_reembed_after_a_model_change(tenant_a, tenant_b, scoped, client_a, client_b, settings):
    settings.EMBEDDING_MODEL_NAME = "old"  # the fake embedder's "old" model
    client_a.post("/kb/upsert", {"title": "A", "content": "Garansi satu tahun."}, format="json")
    client_b.post("/kb/upsert", {"title": "B", "content": "Garansi dua tahun."}, format="json")
    with scoped(tenant_a):
        old_vector = list(Chunk.objects.get().embedding)
    settings.EMBEDDING_MODEL_NAME = ""  # the model changed
    out = StringIO()
    call_command("kb_reembed", "--tenant", tenant_a.id, "--no-progress", stdout=out)
    assert "re-embedded 1 chunk(s) of 1 tenant(s) with fake-384" in out.getvalue()
    with scoped(tenant_a):
        chunk = Chunk.objects.get()
        assert chunk.embedding_model == "fake-384" and list(chunk.embedding) != old_vector
        assert CorpusStats.objects.get().models == {"fake-384": 1}
    with scoped(tenant_b):
        assert Chunk.objects.get().embedding_model == "fake-old-384"  # another tenant's, untouched
    out = StringIO()
    call_command("kb_reembed", "--all-tenants", "--no-progress", stdout=out)
    assert "1 of 2 tenant(s) have chunks to move" in out.getvalue()
    assert "re-embedded 1 chunk(s) of 1 tenant(s)" in out.getvalue() and "1 tenant(s) already on it" in out.getvalue()
    out = StringIO()
    call_command("kb_reembed", "--all-tenants", "--no-progress", stdout=out)
    assert "re-embedded 0 chunk(s)" in out.getvalue()
    call_command("kb_reembed", "--all-tenants", "--force", "--no-progress", stdout=out)
    assert "re-embedded 2 chunk(s)" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("kb_reembed")


def test_resize_gives_the_column_the_new_size_and_re_embeds_everything(
        tenant_a, tenant_b, scoped, client_a, client_b, settings, monkeypatch):
    from django.db import connection

    from knowledge.services import chunks, reembed
    from knowledge.db import stored_dimensions
    from knowledge.selectors import chunk_search

    from knowledge import db

    monkeypatch.setattr(chunks, "_matching_dimensions", set())  # this test's column sizes stay in this test
    monkeypatch.setattr(db, "_comparable", {})
    client_a.post("/kb/upsert", {"entries": [{"title": "Garansi", "content": "Garansi servis laptop satu tahun."},
                                             {"title": "Jam", "content": "Buka jam sembilan pagi."}]}, format="json")
    client_b.post("/kb/upsert", {"title": "Garansi B", "content": "Garansi laptop dua tahun."}, format="json")
    settings.EMBEDDING_DIMENSIONS = 512

    # Ingestion and a plain re-embed refuse with the reason and store nothing.
    assert_error(client_a.post("/kb/upsert", {"title": "Baru", "content": "Produk baru."}, format="json"), 503,
                 "embedding_unavailable")
    with scoped(tenant_a):
        assert Chunk.objects.count() == 2
    with pytest.raises(CommandError, match="512-dim vectors .* stores 384-dim vectors: run `manage.py kb_reembed"):
        call_command("kb_reembed", "--all-tenants", "--no-progress")
    with pytest.raises(CommandError, match="--all-tenants"):
        call_command("kb_reembed", "--tenant", tenant_a.pk, "--resize", "--no-progress")

    # An interrupted resize keeps its staged vectors; the next run embeds only the rest.
    stage, calls = reembed._stage, []

    def interrupted(rows, embedder):
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return stage(rows, embedder)

    monkeypatch.setattr(reembed, "_stage", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_command("kb_reembed", "--all-tenants", "--resize", "--batch-size", "1", "--no-progress")
    assert stored_dimensions() == 384
    monkeypatch.setattr(reembed, "_stage", stage)
    out = StringIO()
    call_command("kb_reembed", "--all-tenants", "--resize", "--no-progress", stdout=out)
    assert "vector column 384 -> 512 dimensions; re-embedded 2 chunk(s) with fake-512" in out.getvalue()

    assert stored_dimensions() == 512
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'kb_chunk_embedding_hnsw'")
        indexdef = cur.fetchone()[0]
        assert "hnsw (embedding vector_cosine_ops)" in indexdef and indexdef.endswith("WHERE in_hnsw")
        cur.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'knowledge_chunk'::regclass "
                    "AND attname = 'embedding'")
        assert cur.fetchone()[0] == "m"
        cur.execute("SELECT to_regclass('knowledge_reembed_staging')")
        assert cur.fetchone()[0] is None
    for tenant, title in ((tenant_a, "Garansi"), (tenant_b, "Garansi B")):
        with scoped(tenant):
            assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"fake-512"}
            hits = chunk_search(tenant=tenant, query="garansi laptop", k=5, methods=("vector",))
            assert hits[0].title == title
            assert {h.document_id for h in hits} <= set(Document.objects.values_list("pk", flat=True))
    assert client_a.post("/kb/upsert", {"title": "Baru", "content": "Produk baru."}, format="json").status_code == 201
    out = StringIO()
    call_command("kb_reembed", "--all-tenants", "--resize", "--no-progress", stdout=out)
    assert "already has 512 dimensions; nothing to resize" in out.getvalue()
    settings.EMBEDDING_DIMENSIONS = 2048
    with pytest.raises(CommandError, match="at most 2000"):
        call_command("kb_reembed", "--all-tenants", "--resize", "--no-progress")


def _reindex(*args):
    return run_command("kb_reindex", *args)


def test_kb_reindex_checks_and_rebuilds_the_keyword_statistics(tenant_a, tenant_b, scoped):
    from django.db import connection

    from knowledge import selectors
    from knowledge.models import CorpusStats, Term
    from knowledge.services import entries_upsert

    for tenant, text in ((tenant_a, "Garansi elektronik 12 bulan, klaim garansi dengan nota."),
                         (tenant_b, "Pengiriman gratis ke seluruh Jawa.")):
        with scoped(tenant):
            entries_upsert(tenant=tenant, entries=[{"title": "Info", "content": text},
                                                   {"title": "Jam", "content": "Buka jam sembilan pagi."}])
    assert _reindex("--all-tenants", "--check")[0] == 0
    with scoped(tenant_a):
        good = {t.term: t.df for t in Term.objects.all()}
        stats = CorpusStats.objects.get()
        good_stats = (stats.chunk_count, stats.token_total)
    # Statistics drift (an edit in SQL, a bug): a wrong df, a missing term, a stray term, a wrong count.
    with connection.cursor() as cur:
        cur.execute("UPDATE knowledge_term SET df = df + 5 WHERE tenant_id = %s AND term = 'garansi'", [tenant_a.pk])
        cur.execute("DELETE FROM knowledge_term WHERE tenant_id = %s AND term = 'nota'", [tenant_a.pk])
        cur.execute("INSERT INTO knowledge_term (tenant_id, term, df) VALUES (%s, 'hantu', 3)", [tenant_a.pk])
        cur.execute("UPDATE knowledge_corpusstats SET chunk_count = 9 WHERE tenant_id = %s", [tenant_a.pk])
    code, out = _reindex("--all-tenants", "--check")
    assert code == 1
    assert f"{tenant_a.pk}: keyword statistics differs: chunks 9 stored / 2 actual" in out
    assert "3 of" in out and f"{tenant_b.pk}: keyword statistics matches its chunks" in out
    with scoped(tenant_a):
        version = CorpusStats.objects.get().version
    code, out = _reindex("--tenant", tenant_a.pk)
    assert code == 0 and "differed (rebuilt)" in out
    with scoped(tenant_a):
        assert {t.term: t.df for t in Term.objects.all()} == good
        stats = CorpusStats.objects.get()
        assert (stats.chunk_count, stats.token_total) == good_stats and stats.version != version
        assert selectors.chunk_search(tenant=tenant_a, query="klaim garansi", k=1)[0].title == "Info"
    assert _reindex("--all-tenants", "--check")[0] == 0
    with scoped(tenant_b):  # the other tenant was not touched
        assert Term.objects.filter(term="pengiriman").exists() or Term.objects.filter(term="kirim").exists()


def test_kb_reindex_reanalyse_rewrites_stale_search_terms(tenant_a, scoped):
    from django.db import connection

    from knowledge import selectors
    from knowledge.services import entries_upsert

    with scoped(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[{"title": "Kirim", "content": "Pengiriman barang dilakukan besok."}])
    # As if an older analyser had stored unstemmed words:
    with connection.cursor() as cur:
        cur.execute("UPDATE knowledge_chunk SET search_text = 'kirim pengiriman barang dilakukan besok', "
                    "token_count = 6 WHERE tenant_id = %s", [tenant_a.pk])
    assert _reindex("--tenant", tenant_a.pk, "--check")[0] == 1
    code, out = _reindex("--tenant", tenant_a.pk, "--reanalyse")
    assert code == 0 and "1 chunk(s) re-analysed" in out and "matches its chunks" in out
    with scoped(tenant_a):
        assert Chunk.objects.get().search_text == "kirim kirim barang laku besok"
        assert selectors.chunk_search(tenant=tenant_a, query="dikirim", k=1, methods=("keyword",))
    assert _reindex("--tenant", tenant_a.pk, "--check")[0] == 0
    with pytest.raises(CommandError):
        call_command("kb_reindex", "--tenant", tenant_a.pk, "--check", "--reanalyse")
    with pytest.raises(CommandError):
        call_command("kb_reindex", "--tenant", "nobody")


def test_sigterm_stops_an_import_as_ctrl_c_does(capsys):
    """SIGTERM killed kb_import without its summary (exit 143); now it stops after the file being
    written, as Ctrl-C does, and the handlers are put back."""
    import os
    import signal
    import sys

    from knowledge.management.commands.kb_import import _stoppable

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with _stoppable(sys.stderr) as received:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next statement
            pytest.fail("not stopped")
    assert received == [signal.SIGTERM] and "Stopping" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
