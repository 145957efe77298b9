"""Search filters (``chunk_search(filters=...)``) as SQL conditions on the chunk ``c`` and its
document ``d``."""

from __future__ import annotations

def filter_sql_of(filters: dict | None) -> tuple[str, list]:
    """SQL conditions on chunk ``c`` / document ``d`` for the supported filters."""
    filters = filters or {}
    clauses, params = [], []
    doc_ids = filters.get("document_ids")
    if filters.get("document_id") is not None:
        doc_ids = [filters["document_id"], *(doc_ids or [])]
    if doc_ids:
        clauses.append("c.document_id = ANY(%s)")
        params.append([int(i) for i in doc_ids])
    if filters.get("tags"):
        clauses.append("d.tags && %s::varchar[]")
        params.append([str(t) for t in filters["tags"]])
    for field in ("source_kind", "file_type"):
        if filters.get(field):
            clauses.append(f"d.{field} = %s")
            params.append(str(filters[field]))
    unknown = set(filters) - {"document_ids", "document_id", "tags", "source_kind", "file_type"}
    if unknown:
        raise ValueError(f"unknown search filter(s): {', '.join(sorted(unknown))}")
    return "".join(f" AND {c}" for c in clauses), params


def from_sql(filter_sql: str) -> str:
    join = " JOIN knowledge_document d ON d.id = c.document_id" if "d." in filter_sql else ""
    return f"knowledge_chunk c{join}"
