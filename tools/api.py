from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from tenants.viewsets import TenantAPIView
from tools.registry import tools_for


class ToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.DictField(help_text="JSON schema of the arguments")
    intent = serializers.CharField(help_text="track_shipment, order_status or empty")
    source = serializers.CharField(help_text="builtin, or tenant:<id> for an HTTP tool defined in the admin")


class ToolListView(TenantAPIView):
    """``GET /tools``: the tools the tenant's agent is offered right now (enabled ones only)."""

    @extend_schema(responses=inline_serializer("AgentTools", {"tools": ToolSerializer(many=True)}))
    def get(self, request):
        return Response({"tools": [
            {"name": t.name, "description": t.description, "parameters": t.parameters, "intent": t.intent,
             "source": t.source} for t in tools_for(tenant=self.tenant)]})
