"""What a tool is: a name, a description, a JSON schema of its arguments and an
implementation. ``run(arguments, timeout)`` returns a JSON-able dict or raises
:class:`ToolFailure` with a stable code; the pipeline records either and feeds it back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent_project.lib.llm import ToolSpec


class ToolFailure(Exception):
    """A tool could not answer. ``code`` is stable (tool_timeout, tool_http_error, ...);
    the message is safe to show the model and the operator (no secrets in it)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict
    run: Callable[[dict, float], dict]
    intent: str = ""  # "track_shipment" | "order_status": lets the offline provider call it
    source: str = "builtin"  # "builtin" or "tenant:<id>"
    timeout: float | None = None  # a per-tool limit below the global one

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters,
                        intent=self.intent)


def check_arguments(schema: dict, arguments: dict) -> dict:
    """Required keys present, and only strings/numbers/booleans for declared ones. Models
    send what they like; a tool should hear a clear refusal, not a KeyError."""
    if not isinstance(arguments, dict):
        raise ToolFailure("tool_bad_arguments", "arguments must be an object")
    properties = schema.get("properties") or {}
    missing = [k for k in schema.get("required") or [] if arguments.get(k) in (None, "")]
    if missing:
        raise ToolFailure("tool_bad_arguments", f"missing argument(s): {', '.join(missing)}")
    clean = {}
    for key, value in arguments.items():
        if key not in properties:
            continue  # unknown keys are dropped, never forwarded
        if not isinstance(value, str | int | float | bool):
            raise ToolFailure("tool_bad_arguments", f"argument {key} must be a string or a number")
        clean[key] = value
    return clean
