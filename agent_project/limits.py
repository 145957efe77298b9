"""Request limits checked before any view runs, each with its own clear answer:

- body size: 413 ``payload_too_large`` (JSON/form bodies over ``MAX_BODY_BYTES``),
  413 ``file_too_large`` (multipart bodies over ``MAX_UPLOAD_BYTES``: the code the knowledge
  base gives a file over the same limit, so a client sees one answer for one cause);
- JSON nesting deeper than ``MAX_JSON_DEPTH``: 422 ``json_too_deep``;
- ``/chat``: more than ``CHAT_MAX_MESSAGES`` messages, 422 ``too_many_messages``; a
  message longer than ``CHAT_MAX_MESSAGE_CHARS``, 422 ``message_too_long``;
- ``?page_size`` above ``MAX_PAGE_SIZE``, 422 ``page_size_too_large`` (not a number:
  422 ``invalid_page_size``), instead of being silently clamped; ``?page`` not a positive
  whole number, 422 ``invalid_page`` (a page past the last: 404 ``page_not_found``,
  ``agent_project.pagination``), not the unknown route's 404 ``not_found``;
- text PostgreSQL cannot store (a NUL character, an unpaired surrogate) or a number too big
  to be finite (``1e400``) anywhere in a JSON body, keys included: 400 ``validation_error``
  naming where; in a query parameter: 400
  ``malformed_request`` (free-form JSON such as metadata reached the database and failed there
  with a 500).

Checking here, once, keeps every app's views and serializers free of it and
refuses an oversized upload from its ``Content-Length`` before reading it.
"""

from __future__ import annotations

import json
import math
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponseBadRequest

from agent_project.errors import error_response
from agent_project.lib.ids import parse_count
from agent_project.lib.storable import UNSTORABLE

# Multipart framing (boundaries, part headers, small form fields) on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def json_depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1); stops
    counting once past ``limit`` so a hostile document costs no more than needed."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


#: What the raw text of a JSON body must hold for ``unstorable_text`` to find anything (an escaped NUL or
#: surrogate, an exponent of three digits, a NaN/Infinity literal): most bodies are not walked at all (a 2 MB
#: body cost 0.35 s to walk, before authentication).
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|[eE][+]?\d{3}|Infinity|NaN")


def unstorable_text(value) -> str | None:
    """Where in a parsed JSON value the first string (key or value) holding a NUL or an
    unpaired surrogate, or number too big to be finite (``1e400``), is
    (``"entries[2].metadata.note"``; ``""`` for the value itself), or None. The path is built only
    for what is found (built for every node, a 2 MB body took 0.35 s)."""
    found = _unstorable_at(value)
    if found is None:
        return None
    path = ""
    for step in reversed(found):
        if isinstance(step, int):
            path += f"[{step}]"
        else:
            step = step.encode("unicode_escape").decode() if UNSTORABLE.search(step) else step
            path = f"{path}.{step}" if path else step
    return path


def _unstorable_at(node) -> list | None:
    """The steps (keys, list indexes) to the first unstorable value, innermost first, or None
    (recursive: the depth is bounded by ``MAX_JSON_DEPTH``, checked first)."""
    if isinstance(node, str):
        return [] if UNSTORABLE.search(node) else None
    if isinstance(node, float):
        return None if math.isfinite(node) else []  # 1e400 parses as infinity, which jsonb refuses
    if isinstance(node, dict):
        for key, child in node.items():
            if UNSTORABLE.search(key):
                return [key]
            found = _unstorable_at(child)
            if found is not None:
                found.append(key)
                return found
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found = _unstorable_at(child)
            if found is not None:
                found.append(index)
                return found
    return None


def chat_violation(body, *, max_messages: int, max_chars: int):
    """The first /chat limit ``body`` breaks, as ``(code, message, details)``, or None."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        if len(messages) > max_messages:
            return ("too_many_messages", f"At most {max_messages} messages per request (got {len(messages)}).",
                    {"max_messages": max_messages, "count": len(messages)})
        for index, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else message
            if isinstance(content, str) and len(content) > max_chars:
                return ("message_too_long", f"Message {index} is {len(content)} characters; the limit is {max_chars}.",
                        {"index": index, "max_chars": max_chars, "length": len(content)})
    single = body.get("message")
    if isinstance(single, str) and len(single) > max_chars:
        return ("message_too_long", f"The message is {len(single)} characters; the limit is {max_chars}.",
                {"max_chars": max_chars, "length": len(single)})
    return None


def body_too_large(content_type: str, length: int) -> tuple[str, str, dict] | None:
    """``(code, message, details)`` of the 413 a body of this type and declared length gets, or
    None. Also read by gunicorn's ``pre_request`` hook (agent_project/gunicorn_conf.py), which
    closes the connection after such an answer instead of reading the body it refused."""
    if content_type.startswith("multipart/"):
        if length > settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD:
            return ("file_too_large", f"Uploads may be at most {settings.MAX_UPLOAD_BYTES} bytes.",
                    {"max_bytes": settings.MAX_UPLOAD_BYTES, "limit": settings.MAX_UPLOAD_BYTES,
                     "content_length": length})
    elif length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return ("payload_too_large", f"The request body may be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
                {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "content_length": length})
    return None


def _content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _unstorable_query(request) -> bool:
    return any(UNSTORABLE.search(text) for key, values in request.GET.lists() for text in (key, *values))


class RequestLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.chat_paths = re.compile(settings.CHAT_PATHS_REGEX)

    def __call__(self, request):
        refusal = self.check(request)
        return refusal if refusal is not None else self.get_response(request)

    def check(self, request):
        if request.path.startswith("/admin"):
            # The admin has Django's own limits and answers in HTML; a NUL in a changelist filter
            # (?status=%00) would reach PostgreSQL and fail there (500).
            if _unstorable_query(request) or UNSTORABLE.search(request.path_info):  # an object id in the path
                return HttpResponseBadRequest("Bad request: the address and query parameters may not contain NUL "
                                              "characters or unpaired surrogates.",
                                              content_type="text/plain; charset=utf-8")
            return None
        length = _content_length(request)
        if length is None:
            return error_response(400, "bad_request", "Content-Length is not a number.")
        content_type = request.META.get("CONTENT_TYPE", "")
        too_large = body_too_large(content_type, length)
        if too_large:
            return error_response(413, *too_large)

        if _unstorable_query(request):
            return error_response(400, "malformed_request",
                                  "Query parameters may not contain NUL characters or unpaired surrogates.")
        page = request.GET.get("page")
        if page is not None and page != "last" and (parse_count(page) or 0) < 1:
            return error_response(422, "invalid_page", 'page must be a positive whole number (or "last").')
        page_size = request.GET.get("page_size")
        if page_size is not None:
            size = parse_count(page_size)
            if size is None or size < 1:
                return error_response(422, "invalid_page_size", "page_size must be a positive whole number.")
            if size > settings.MAX_PAGE_SIZE:
                return error_response(422, "page_size_too_large",
                                      f"page_size may be at most {settings.MAX_PAGE_SIZE}.",
                                      {"max_page_size": settings.MAX_PAGE_SIZE})

        if "json" in content_type and request.method in ("POST", "PUT", "PATCH"):
            try:
                raw = request.body  # read once here; DRF's parser reads the same cached bytes
            except RequestDataTooBig:
                return error_response(413, "payload_too_large",
                                      f"The request body may be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
                                      {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
            if not raw:
                return None
            try:
                body = json.loads(raw)
            except RecursionError:
                return self._too_deep()
            except ValueError:
                return None  # malformed JSON: the view's parser answers 400 malformed_request
            if json_depth(body, settings.MAX_JSON_DEPTH) > settings.MAX_JSON_DEPTH:
                return self._too_deep()
            where = unstorable_text(body) if _MAYBE_UNSTORABLE.search(raw) else None
            if where is not None:
                return error_response(400, "validation_error",
                                      "Text may not contain NUL characters or unpaired surrogates, and numbers must "
                                      f"be finite ({where or 'body'}).",
                                      {"field": where})
            if self.chat_paths.search(request.path):
                violation = chat_violation(body, max_messages=settings.CHAT_MAX_MESSAGES,
                                           max_chars=settings.CHAT_MAX_MESSAGE_CHARS)
                if violation:
                    return error_response(422, *violation)
        return None

    @staticmethod
    def _too_deep():
        return error_response(422, "json_too_deep",
                              f"JSON may be nested at most {settings.MAX_JSON_DEPTH} levels deep.",
                              {"max_depth": settings.MAX_JSON_DEPTH})
