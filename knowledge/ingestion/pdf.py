"""PDF: one section per page with text, read by pypdf within a time budget, with the
header, encryption and page count checked before any page is (``preflight`` uses those checks
alone). NFKC undoes the ligatures and full-width forms PDF fonts use.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from contextlib import contextmanager

from django.conf import settings

from knowledge.ingestion.common import DocumentError, Section, _Budget, _limit, _request_step

# pypdf logs a warning per font it cannot fully decode (fontTools missing); the text
# still comes out, and those lines drown the worker's log.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def _pdf_text(text: str) -> str:
    """NFKC turns the ligatures, full-width forms and non-breaking spaces that PDF fonts use back into the
    letters people type ("mis\ufb01ts" -> "misfits"), so keyword search and the embedder both match them."""
    return unicodedata.normalize("NFKC", text).replace("\x00", "")


def _open_pdf(data: bytes):
    """A ``PdfReader`` for ``data`` once the checks that need no page content pass: the header, the encryption
    (an owner-password-only PDF opens with an empty user password) and the page count."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentError(422, "file_unreadable", "This file is not a PDF (it does not start with %PDF).")
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except (DependencyError, NotImplementedError):
            opened = 0
        if not opened:
            raise DocumentError(422, "pdf_encrypted",
                                "This PDF is password-protected. Remove the password and upload it again.")
    page_count = len(reader.pages)
    max_pages = _limit("KB_MAX_PDF_PAGES", 500)
    if page_count > max_pages:
        raise DocumentError(422, "too_many_pages", f"This PDF has {page_count} pages; the limit is {max_pages}.",
                            {"pages": page_count, "limit": max_pages})
    return reader


@contextmanager
def _pdf_errors():
    """What pypdf raises, as the ``DocumentError`` a caller answers with."""
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    try:
        yield
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise DocumentError(422, "pdf_encrypted",
                            "This PDF is password-protected. Remove the password and upload it again.") from None
    except LimitReachedError:
        # pypdf stops inflating a stream past its own limit (75 MB): a deflate bomb or an absurd page.
        raise DocumentError(422, "pdf_too_large",
                            "This PDF holds content that expands beyond a safe size when decompressed; "
                            "it cannot be read.") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - on hostile input pypdf raises anything, RecursionError to struct.error
        raise DocumentError(422, "file_unreadable",
                            f"This PDF could not be read: {str(exc) or type(exc).__name__}") from None


#: pypdf's cost to parse and walk a content stream, per decoded byte (measured: 1.4 MB of "(a) Tj" took 2.3 s). A
#: page whose estimated cost is over the time left is refused before pypdf starts on it, since its parse cannot be
#: interrupted.
_PDF_SECONDS_PER_CONTENT_BYTE = 1.5e-6
#: the extraction's deadline is checked every this many content-stream operators
_PDF_OPERATORS_PER_CHECK = 4096


def _page_content_key(page) -> tuple | None:
    """What a page's text depends on: its content streams (by object number), resources and rotation. Pages
    sharing all three read the same, so their text is extracted once: a few-KB PDF whose hundreds of pages point to
    one heavy stream would otherwise make pypdf parse it once per page (2.4 s each). None when a page's content is
    not an indirect object (nothing to share)."""
    from pypdf.generic import ArrayObject, IndirectObject

    contents = page.raw_get("/Contents") if "/Contents" in page else None
    refs = contents if isinstance(contents, ArrayObject) else [contents]
    if not refs or not all(isinstance(ref, IndirectObject) for ref in refs):
        return None
    resources = page.raw_get("/Resources") if "/Resources" in page else None
    resources = (resources.idnum, resources.generation) if isinstance(resources, IndirectObject) else repr(resources)
    if len(resources) > 10_000:  # an inline resource dictionary is small; a huge one is not worth comparing
        return None
    return tuple((ref.idnum, ref.generation) for ref in refs), resources, repr(page.get("/Rotate", 0))


def _page_text(page, budget: _Budget, number: int) -> str:
    contents = page.get_contents()
    size = len(contents.get_data()) if contents is not None else 0
    budget.check(ahead=size * _PDF_SECONDS_PER_CONTENT_BYTE, page=number)
    operators = 0

    def visit(*_):
        nonlocal operators
        operators += 1
        if operators % _PDF_OPERATORS_PER_CHECK == 0:
            budget.check(page=number)

    return _pdf_text(page.extract_text(visitor_operand_before=visit) or "")


def parse_pdf(data: bytes, *, max_seconds: float | None = None) -> list[Section]:
    """One section per page with text. Extraction has a time budget (``max_seconds``, else ``KB_PDF_MAX_SECONDS``),
    and each page ``KB_PDF_PAGE_MAX_SECONDS`` of it, checked between pages and while a page is read: past either the
    file is refused as ``pdf_too_complex``. A real page reads in milliseconds: a hostile one fails in seconds
    instead of holding an ingestion worker for the whole file's budget."""
    seconds = max_seconds if max_seconds is not None else _limit("KB_PDF_MAX_SECONDS", 60)
    page_seconds = float(getattr(settings, "KB_PDF_PAGE_MAX_SECONDS", 2.0))
    budget = _Budget(seconds, "pdf_too_complex", "This PDF's text", _request_step(max_seconds))
    with _pdf_errors():
        reader = _open_pdf(data)
        sections = []
        extracted: dict[tuple, str] = {}
        for number, page in enumerate(reader.pages, start=1):
            budget.check(page=number)
            key = _page_content_key(page)
            text = extracted.get(key) if key is not None else None
            if text is None:
                text = _page_text(page, budget.within(page_seconds, "A page of this PDF"), number)
                if key is not None:
                    extracted[key] = text
            if text.strip():
                sections.append(Section(text=text, provenance={"page": number}))
    return sections
