"""What every parser shares: the error a bad file gets (``DocumentError``, with an HTTP status
and a stable code), the time budget of one file's parsing (``ParseTimeout`` past it), the
``Section`` a parser returns, and the settings helper for its limits. Imports no parser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings


class DocumentError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class ParseTimeout(DocumentError):
    """Parsing would take longer than the time it was given. With the worker's budget that is the answer (422);
    with the request's shorter one the caller queues the file for the worker instead."""


class _Budget:
    """A deadline for one file's parsing, checked between pages or rows and every few thousand PDF operators.

    ``max_step`` also refuses to start one uninterruptible step (pypdf parsing a page's content stream, openpyxl
    loading shared strings) estimated to need more: the upload request gives it, so a step that alone would hold
    the web thread for seconds goes to the worker without being tried."""

    def __init__(self, seconds: float | None, code: str, what: str, max_step: float | None = None,
                 parent: _Budget | None = None):
        self.seconds, self.code, self.what, self.max_step, self.parent = seconds, code, what, max_step, parent
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def check(self, ahead: float = 0.0, **details) -> None:
        """Fail when the deadline has passed, or would pass after ``ahead`` more seconds of estimated work."""
        if self.parent is not None:
            self.parent.check(ahead, **details)
        if self.deadline is not None and (time.monotonic() + ahead > self.deadline or (
                self.max_step is not None and ahead > self.max_step)):
            raise ParseTimeout(422, self.code, f"{self.what} would take more than {self.seconds:g} seconds to read; "
                                               "it is too complex to index.",
                               {"limit_seconds": self.seconds, **details})

    def within(self, seconds: float, what: str) -> _Budget:
        """A part of the work (one PDF page) limited to ``seconds``, within this budget (checked first)."""
        return _Budget(seconds, self.code, what, parent=self)


@dataclass
class Section:
    text: str = ""
    provenance: dict = field(default_factory=dict)
    #: a context line repeated at the top of each of the section's chunks (heading path, sheet name)
    context: str = ""
    #: table sections: (rendered row, provenance of that row)
    rows: list[tuple[str, dict]] | None = None


def _limit(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def _request_step(max_seconds: float | None) -> float | None:
    """An explicit budget is the request's: there, one step may take a tenth of it."""
    return None if max_seconds is None else max_seconds / 10
