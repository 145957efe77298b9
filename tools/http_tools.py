"""Tenant HTTP tools: the URL template filled from the arguments, the call made through
the guarded outbound client (:mod:`agent_project.lib.outbound`), and the answer reduced by
the operator's field mapping."""

from __future__ import annotations

import json
import re
import string
from urllib.parse import quote, urlencode, urlsplit

from agent_project.lib import outbound
from tools.base import ToolFailure

_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
RESULT_MAX_CHARS = 4000  # what goes back to the model; a full answer can be much larger


def template_host(url_template: str) -> str:
    """The host an operator configured; raises ValueError if it is not a fixed http(s) host."""
    parts = urlsplit(url_template)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if "{" in netloc or "}" in netloc or "@" in parts.netloc:
        raise ValueError("placeholders are allowed in the path and query only, never in the host")
    if not parts.hostname:
        raise ValueError("the URL needs a host")
    for _, field, _, _ in string.Formatter().parse(url_template):
        if field is not None and not _PLACEHOLDER.fullmatch("{" + field + "}"):
            raise ValueError(f"placeholder {{{field}}} must be a plain name")
    return parts.hostname.lower()


def render_url(url_template: str, arguments: dict) -> tuple[str, dict]:
    """``(url, unused arguments)``; every value is percent-encoded whole, so an argument
    cannot add a path segment, a query, a fragment or a host."""
    used = set()

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if arguments.get(name) in (None, ""):
            raise ToolFailure("tool_bad_arguments", f"missing argument: {name}")
        used.add(name)
        return quote(str(arguments[name]), safe="")

    url = _PLACEHOLDER.sub(fill, url_template)
    return url, {k: v for k, v in arguments.items() if k not in used}


def pick(data, path: str):
    """``data.items.0.status`` from parsed JSON (None when absent)."""
    value = data
    for key in path.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def map_response(data, mapping: dict) -> dict:
    if not mapping:
        result = data if isinstance(data, dict) else {"result": data}
    else:
        result = {name: pick(data, str(path)) for name, path in mapping.items()}
    text = json.dumps(result, ensure_ascii=False, default=str)
    if len(text) > RESULT_MAX_CHARS:
        return {"result_truncated": text[:RESULT_MAX_CHARS]}
    return result


# outbound's failure codes as the tools' own (the model and the try-it page read these).
_TOOL_CODES = {"address_refused": "tool_address_refused", "url_refused": "tool_host_refused",
               "redirect_refused": "tool_host_refused", "timeout": "tool_timeout", "unreachable": "tool_unreachable",
               "too_large": "tool_response_too_large"}


def tool_fetch(*, method: str, url: str, allowed_host: str, timeout: float, max_bytes: int,
               headers: dict | None = None, json_body=None, allow_private: bool = False) -> outbound.Fetched:
    """A tool's call through the guarded client; a refusal or failure is a ``ToolFailure``."""
    try:
        return outbound.fetch(method=method, url=url, allowed_host=allowed_host, headers=headers,
                              json_body=json_body, timeout=timeout, max_bytes=max_bytes, allow_private=allow_private)
    except outbound.OutboundError as exc:
        code = "tool_url_refused" if exc.rule == "scheme" else _TOOL_CODES[exc.code]
        raise ToolFailure(code, exc.message) from None


def http_tool_call(*, method: str, url_template: str, headers: dict, mapping: dict, arguments: dict,
                   timeout: float, max_bytes: int, allow_private: bool) -> dict:
    host = template_host(url_template)
    url, rest = render_url(url_template, arguments)
    body = None
    if method == "GET" and rest:
        url += ("&" if urlsplit(url).query else "?") + urlencode({k: str(v) for k, v in rest.items()})
    elif method != "GET":
        body = rest
    fetched = tool_fetch(method=method, url=url, allowed_host=host, headers={"Accept": "application/json", **headers},
                         json_body=body, timeout=timeout, max_bytes=max_bytes, allow_private=allow_private)
    if fetched.status == 404:
        raise ToolFailure("tool_not_found", "the shop's system found nothing for these arguments (404)")
    if fetched.status >= 400:
        raise ToolFailure("tool_http_error", f"the shop's system answered {fetched.status}")
    try:
        data = json.loads(fetched.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ToolFailure("tool_bad_response", "the shop's system did not answer with JSON") from None
    return map_response(data, mapping)
