"""The tools a tenant's agent is offered, and running the calls a model asks for.

Built-in: ``track_shipment`` when the tenant has an enabled ``ShippingConfig``. Tenant:
every enabled ``TenantTool``. Everything is loaded for one tenant inside its scope, and a
call is only ever run by looking its name up in *that* list, so a tool of another tenant
(or one the model made up) is never run: the call is recorded as ``unknown_tool``.
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings

from agent_project.lib.intents import COURIERS, courier_code
from agent_project.lib.llm import ToolRequest
from tenants.models import Tenant
from tools.base import Tool, ToolFailure, check_arguments
from tools.models import ShippingConfig, TenantTool

logger = logging.getLogger(__name__)

TRACK_SHIPMENT = "track_shipment"
RESERVED_NAMES = frozenset({TRACK_SHIPMENT})
TRACK_SCHEMA = {
    "type": "object",
    "properties": {
        "waybill": {"type": "string", "description": "The waybill (nomor resi), e.g. JP1234567890."},
        "courier": {"type": "string", "description": "Courier code: " + ", ".join(COURIERS) + "."},
    },
    "required": ["waybill"],
}


def call_timeout() -> float:
    return float(getattr(settings, "TOOLS_CALL_TIMEOUT_SECONDS", 8.0))


def max_response_bytes() -> int:
    return int(getattr(settings, "TOOLS_MAX_RESPONSE_BYTES", 256 * 1024))


def tracking_provider(config: ShippingConfig):
    from tools.shipping.biteship import BiteshipTrackingProvider
    from tools.shipping.mock import MockTrackingProvider

    if config.provider == ShippingConfig.Provider.BITESHIP:
        return BiteshipTrackingProvider(api_key=config.api_key,
                                        base_url=getattr(settings, "BITESHIP_BASE_URL", "https://api.biteship.com"))
    return MockTrackingProvider()


def tracking_tool(*, tenant: Tenant, config: ShippingConfig) -> Tool:
    from tools.shipping.summary import tracking_payload

    timezone = tenant.timezone or "Asia/Jakarta"
    # read once, inside the tenant's scope: running the call needs no database
    provider_name, api_key, default_courier = config.provider, config.api_key, config.default_courier

    def run(arguments: dict, timeout: float) -> dict:
        snapshot = ShippingConfig(provider=provider_name, api_key=api_key)
        courier = courier_code(str(arguments.get("courier") or "")) or str(arguments.get("courier") or "").lower()
        waybill = "".join(str(arguments["waybill"]).split()).upper()
        if not waybill.isalnum() or len(waybill) > 40:
            raise ToolFailure("tool_bad_arguments", "a waybill is letters and digits only")
        result = tracking_provider(snapshot).track(waybill=waybill, courier=courier or default_courier,
                                                   timeout=timeout)
        return tracking_payload(result, timezone=timezone)

    return Tool(name=TRACK_SHIPMENT, intent="track_shipment", parameters=TRACK_SCHEMA, run=run,
                description="Track a parcel by its waybill number (nomor resi) and courier: gives the current "
                            "status, the last scan's place and time, and the estimated arrival. Use it whenever "
                            "the customer asks where their package or order is and gives a waybill.")


def http_tool(row: TenantTool) -> Tool:
    from tools.http_tools import http_tool_call

    method, url_template, headers = row.method, row.url_template, row.header_dict()
    mapping, allow_private = dict(row.response_mapping or {}), row.allow_private_network

    def run(arguments: dict, timeout: float) -> dict:
        return http_tool_call(method=method, url_template=url_template, headers=headers, mapping=mapping,
                              arguments=arguments, timeout=timeout, max_bytes=max_response_bytes(),
                              allow_private=allow_private)

    parameters = row.parameters or {"type": "object", "properties": {}}
    return Tool(name=row.name, description=row.description, parameters=parameters, run=run, intent=row.intent,
                source=f"tenant:{row.pk}", timeout=row.timeout_seconds)


_cache: dict[str, tuple[object, list[Tool]]] = {}


def tools_for(*, tenant: Tenant) -> list[Tool]:
    """The enabled tools of ``tenant`` (call inside its scope). Built-ins win a name clash.

    Every chat turn asks, and most tenants' tools rarely change: the list is kept per
    process, keyed by the tenant's ``updated_at``, which any change to a tool or the
    shipping config moves (``tenant_config_changed``), so an edit is seen by the
    next turn in every worker. The tenant row is fresh: the request just loaded it."""
    stamp = getattr(tenant, "updated_at", None)
    cached = _cache.get(tenant.pk)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return list(cached[1])
    tools = _load_tools(tenant)
    if stamp is not None:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[tenant.pk] = (stamp, tools)
    return list(tools)


def forget(tenant_id: str) -> None:
    _cache.pop(tenant_id, None)


def tenant_config_changed(tenant_ids) -> None:
    """Tools are part of a tenant's configuration: a change moves the tenant's
    ``updated_at``, which ``tools_for`` caches by (in every process). Called on every save,
    delete and bulk update of a tool or shipping config (connected in ``tools.apps``)."""
    from django.utils import timezone

    ids = {i for i in tenant_ids if i is not None}
    if ids:
        Tenant.objects.filter(pk__in=ids).update(updated_at=timezone.now())
    for tenant_id in ids:  # this process may hold a tenant object loaded before the change
        forget(tenant_id)


def _load_tools(tenant: Tenant) -> list[Tool]:
    tools: list[Tool] = []
    config = ShippingConfig.objects.filter(tenant=tenant, enabled=True).first()
    if config is not None:
        tools.append(tracking_tool(tenant=tenant, config=config))
    names = {t.name for t in tools}
    for row in TenantTool.objects.filter(tenant=tenant, enabled=True).order_by("name"):
        if row.name not in names:
            tools.append(http_tool(row))
            names.add(row.name)
    return tools


def tool_run(*, tool: Tool | None, request: ToolRequest, timeout: float | None = None) -> dict:
    """Run one call and return its record: ``{id, name, arguments, result, error, duration_ms}``.
    Never raises: a failure is part of the record, and the model hears about it."""
    started = time.perf_counter()
    record = {"id": request.id, "name": request.name, "arguments": request.arguments, "result": None,
              "error": None, "duration_ms": 0.0}
    try:
        if tool is None:
            raise ToolFailure("unknown_tool", f"there is no tool named {request.name!r} for this shop")
        arguments = check_arguments(tool.parameters, request.arguments)
        limit = min(x for x in (timeout or call_timeout(), tool.timeout) if x)
        record["result"] = tool.run(arguments, limit)
    except ToolFailure as exc:
        record["error"] = {"code": exc.code, "message": exc.message}
    except Exception as exc:  # a bug in one tool must not lose the customer's turn
        logger.exception("tool %s failed", request.name)
        record["error"] = {"code": "tool_error", "message": f"the tool failed ({exc.__class__.__name__})"}
    record["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return record


def tool_calls_run(*, tools: list[Tool], requests: list[ToolRequest], timeout: float | None = None) -> list[dict]:
    by_name = {t.name: t for t in tools}
    return [tool_run(tool=by_name.get(r.name), request=r, timeout=timeout) for r in requests]


def result_for_model(record: dict) -> str:
    """What the model reads back for one call: the result, or the error (no stack, no secrets)."""
    if record["error"]:
        body = {"error": record["error"]["code"], "message": record["error"]["message"]}
    else:
        body = {"result": record["result"]}
    return json.dumps(body, ensure_ascii=False, default=str)
