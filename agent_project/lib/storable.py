"""Text PostgreSQL cannot store: a NUL character, or an unpaired surrogate (half of an emoji).

``UNSTORABLE`` is the one pattern for it: the request limits (``agent_project.limits``) and the
admin's JSON fields refuse such text where a client or an operator sends it; the model adapters
(``lib.llm.observed``) strip it from what a provider answers. Imports nothing of the project.
"""

from __future__ import annotations

import re

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def strip_unstorable(text: str) -> str:
    """``text`` without the characters PostgreSQL cannot store."""
    return UNSTORABLE.sub("", text) if text else text
