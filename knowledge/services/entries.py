"""Text entries written through the API (``POST /kb/upsert``): created or updated in place by
``external_id`` (or, without one, found by their content), all embedded first and written in
one transaction, all or nothing.
"""

from __future__ import annotations

import re

from django.db import transaction

from agent_project.errors import ApiError
from knowledge.ingestion.chunking import ChunkDraft
from knowledge.models import Document
from knowledge.services.chunks import (PreparedChunks, _lock_keys, _mark_ready, _prepare_or_503, _write_chunks,
                                       checksum_of, chunk_drafts, entry_sections)
from knowledge.services.files import IMPORT_ID_PREFIX

_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*")


def _entry_checksum(entry: dict) -> str:
    return checksum_of(f"{entry['title']}\n\n{entry['content']}".encode())


def entries_upsert(*, tenant, entries: list[dict]) -> list[dict]:
    """Create or update text entries (``title``, ``content``, ``tags``, ``metadata``,
    ``external_id``). The same ``external_id`` updates that document in place;
    unchanged title+content is not re-embedded (tags/metadata still update). All
    entries are embedded first and written in one transaction: all or nothing.
    Entries are applied in order, as if one after another: a later entry with the same
    content (and no ``external_id``) finds the document an earlier one created."""
    # A title is one line: with a line break in it, "title\n\ncontent" (the checksum's text) could be
    # split two ways, and moving a paragraph between title and content looked unchanged. Only line
    # breaks change (a title stored with two spaces keeps its checksum).
    entries = [{**entry, "title": _LINE_BREAKS.sub(" ", entry["title"]).strip()} for entry in entries]
    reserved = [e["external_id"] for e in entries if (e.get("external_id") or "").startswith(IMPORT_ID_PREFIX)]
    if reserved:
        raise ApiError(400, "validation_error", f"external_id {reserved[0]!r}: ids starting with "
                       f"{IMPORT_ID_PREFIX!r} name files that kb_import keeps.", {"external_id": reserved[0]})
    keyed = [(entry, _entry_checksum(entry), entry.get("external_id") or None) for entry in entries]

    def drafts_of(entry: dict) -> list[ChunkDraft]:
        return chunk_drafts(entry_sections(entry["title"], entry["content"]))

    # What is stored now (one query per kind of key, not one per entry), and which entries change it.
    found = _entry_documents(tenant, keyed)
    _refuse_other_kinds(found)
    plans, changed, earlier = [], [], set()  # earlier: the contents this request's earlier entries store
    for entry, checksum, external_id in keyed:
        plans.append([entry, checksum, external_id, None])
        repeated = not external_id and checksum in earlier  # it will find that entry's document
        if not repeated and not _entry_unchanged(found.get(_entry_key(checksum, external_id)), checksum):
            changed.append((plans[-1], drafts_of(entry)))
        earlier.add(checksum)
    # Every changed entry's chunks embedded together, in full batches (with Gemini, 100 one-chunk
    # entries are one request instead of 100).
    prepared = _prepare_or_503([draft for _, drafts in changed for draft in drafts])
    start = 0
    for plan, drafts in changed:
        end = start + len(drafts)
        plan[3] = PreparedChunks(drafts=drafts, vectors=prepared.vectors[start:end],
                                 analysed=prepared.analysed[start:end], embedding_model=prepared.embedding_model)
        start = end

    results, stored, new = [], {}, {}
    with transaction.atomic():
        # A concurrent upsert of the same external_id (or, without one, the same content) may
        # have written since the lookups above: look again, locked, under a lock it also takes.
        _lock_keys(tenant.pk, [f"external:{external_id}" if external_id else f"checksum:{checksum}"
                               for _, checksum, external_id, _ in plans])
        found = _entry_documents(tenant, keyed, lock=True)
        _refuse_other_kinds(found)
        for entry, checksum, external_id, prepared in plans:
            key = _entry_key(checksum, external_id)
            existing = found.get(key)
            if _entry_unchanged(existing, checksum):
                prepared = None  # a concurrent request (or an earlier entry of this one) stored this very content
            elif prepared is None:
                prepared = _prepare_or_503(drafts_of(entry))  # changed since the lookup: embedded here (rare)
            if existing is not None:
                document, action = existing, "unchanged" if prepared is None else "updated"
            else:
                document = Document(tenant=tenant, source_kind=Document.Source.ENTRY, file_type="entry",
                                    external_id=external_id)
                action = "created"
            old_checksum = document.checksum
            document.title = entry["title"][:300]
            document.content = entry["content"]
            document.checksum = checksum
            if "tags" in entry or existing is None:
                document.tags = list(dict.fromkeys(entry.get("tags") or []))
            if "metadata" in entry or existing is None:
                document.metadata = entry.get("metadata") or {}
            if prepared is not None:
                # Ready as saved (its chunks are written below, in this transaction), as a later
                # entry's lookup would find it after a commit. A document changed twice keeps the last.
                _mark_ready(document, prepared)
                stored[id(document)] = (document, prepared)
            if document.pk is None:  # inserted below, all at once (a later entry may still change it)
                new[id(document)] = document
            else:
                document.save()
            results.append({"action": action, "document": document})
            # What the lookups would now return for later entries of this request.
            found[key] = document
            if found.get(("checksum", old_checksum)) is document and old_checksum != checksum:
                del found[("checksum", old_checksum)]
            if document.status == Document.Status.READY and document.source_kind == Document.Source.ENTRY:
                found.setdefault(("checksum", checksum), document)
        # The new documents in one INSERT (one at a time: 229 of the ~850 ms that 272 one-chunk entries
        # took besides the model), then every entry's chunks in one DELETE, one COPY and one statistics
        # update: one entry at a time, these writes and the lookups made an upsert of 272 one-chunk
        # entries 30% slower than embedding them.
        Document.objects.bulk_create(list(new.values()))
        _write_chunks(tenant.pk, list(stored.values()))
    return results


def _refuse_other_kinds(found: dict) -> None:
    """An ``external_id`` held by an uploaded or imported document is not an entry's to replace:
    its file would come back with the next re-process or import (409)."""
    for (kind, key), document in found.items():
        if kind == "external" and document.source_kind != Document.Source.ENTRY:
            raise ApiError(409, "external_id_conflict", f"external_id {key!r} belongs to a document of kind "
                           f"{document.source_kind!r} (id {document.pk}); an entry cannot replace it.",
                           {"external_id": key, "document_id": document.pk, "source_kind": document.source_kind})


def _entry_key(checksum: str, external_id: str | None) -> tuple[str, str]:
    """An entry is the document with its ``external_id`` or, without one, a ready entry
    document with the same content."""
    return ("external", external_id) if external_id else ("checksum", checksum)


def _entry_unchanged(existing: Document | None, checksum: str) -> bool:
    return existing is not None and existing.checksum == checksum and existing.status == Document.Status.READY


def _entry_documents(tenant, keyed: list[tuple[dict, str, str | None]], lock: bool = False) -> dict:
    """{entry key: document} for the entries' keys (``lock``: FOR UPDATE, in a transaction).
    A document found by both lookups is one object: what an entry changes in it, a later
    entry reaching it by the other key sees (two copies of one row, the second saved last,
    had written the first's stale content back over an update whose chunks were written)."""
    external_ids = [external_id for _, _, external_id in keyed if external_id]
    checksums = [checksum for _, checksum, external_id in keyed if not external_id]
    found, by_pk = {}, {}
    if external_ids:
        by_external = Document.objects.filter(tenant=tenant, external_id__in=external_ids)
        for document in (by_external.select_for_update() if lock else by_external):
            found[("external", document.external_id)] = by_pk.setdefault(document.pk, document)
    if checksums:
        by_content = Document.objects.filter(tenant=tenant, checksum__in=checksums, source_kind=Document.Source.ENTRY,
                                             status=Document.Status.READY)
        for document in (by_content.select_for_update() if lock else by_content):  # newest first, as .first()
            found.setdefault(("checksum", document.checksum), by_pk.setdefault(document.pk, document))
    return found
