"""The follow-up rules as pure functions (no ORM, no clock, no I/O), tested table-driven:
how long to wait before a retry, what an HTTP answer means, and how a template is filled."""

from __future__ import annotations

import string
from typing import Literal

Outcome = Literal["sent", "retry", "permanent"]

# Values every template may use, filled from the contact and the tenant at send time.
BUILTIN_VARIABLES = ("name", "first_name", "phone", "email", "tenant_name")
MAX_VARIABLES = 50
MAX_VARIABLE_LENGTH = 500


class TemplateError(ValueError):
    def __init__(self, code: str, message: str, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def retry_delay(*, attempt: int, base: float, cap: float, rand: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential
    (base, 2·base, 4·base … capped) with "equal jitter": a random point in the upper half
    of that step, so many follow-ups failing together (a receiver outage) do not all
    come back in the same second, yet none retries sooner than half its step.
    ``rand`` is a number in [0, 1)."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    step = min(cap, base * (2 ** min(attempt - 1, 32)))
    return step / 2 + step / 2 * rand


def classify_status(status_code: int) -> Outcome:
    """2xx delivered; 408 and 429 are the receiver asking us to come back later, and
    5xx is its own failure: retry. Any other 4xx means this request will never be
    accepted as it is (bad URL, bad signature, gone): fail now rather than hammer it.
    3xx is refused too: a signed webhook must not be redirected somewhere else."""
    if 200 <= status_code < 300:
        return "sent"
    if status_code in (408, 429) or status_code >= 500:
        return "retry"
    return "permanent"


def template_fields(text: str) -> list[str]:
    """The ``{placeholders}`` of a message, in order. Only plain names are allowed:
    ``{name}`` yes, ``{contact.name}``, ``{0}``, ``{name!r}`` or ``{name:>10}`` no,
    because the text comes from API clients and str.format would walk attributes."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError("invalid_template", f"The message is not a valid template: {exc}. "
                            "Write a literal brace as {{ or }}.") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise TemplateError("invalid_template",
                                f"'{{{field}}}' is not a plain placeholder; use names like {{name}}.",
                                details={"placeholder": field})
        fields.append(field)
    return fields


def template_check(text: str, variables: dict) -> None:
    """Refuse a template that names a value nobody will provide, or odd variables."""
    if not isinstance(variables, dict):
        raise TemplateError("invalid_variables", "variables must be an object of name → text.")
    if len(variables) > MAX_VARIABLES:
        raise TemplateError("invalid_variables", f"At most {MAX_VARIABLES} variables.")
    for key, value in variables.items():
        if not str(key).isidentifier():
            raise TemplateError("invalid_variables", f"'{key}' is not a valid variable name.")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TemplateError("invalid_variables", f"Variable '{key}' must be text or a number.")
        if len(str(value)) > MAX_VARIABLE_LENGTH:
            raise TemplateError("invalid_variables", f"Variable '{key}' is longer than {MAX_VARIABLE_LENGTH}.")
    unknown = sorted({f for f in template_fields(text) if f not in variables and f not in BUILTIN_VARIABLES})
    if unknown:
        raise TemplateError("unknown_template_variable",
                            f"The message uses {', '.join('{' + u + '}' for u in unknown)} but no value is given "
                            f"for it; pass it in 'variables' or use one of {', '.join(BUILTIN_VARIABLES)}.",
                            details={"unknown": unknown, "builtin": list(BUILTIN_VARIABLES)})


def template_render(text: str, *, builtins: dict, variables: dict) -> str:
    """Fill a checked template; explicit variables win over the built-in ones."""
    values = {**{k: "" if v is None else str(v) for k, v in builtins.items()},
              **{k: str(v) for k, v in variables.items()}}
    template_fields(text)  # refuses anything but plain names, even if the text was stored long ago
    return text.format_map(values)


def builtin_values(*, contact_name: str, phone: str | None, email: str | None, tenant_name: str) -> dict:
    name = (contact_name or "").strip()
    return {
        "name": name,
        "first_name": name.split()[0] if name else "",
        "phone": phone or "",
        "email": email or "",
        "tenant_name": tenant_name,
    }
