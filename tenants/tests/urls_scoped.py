"""The project's URLs plus two minimal tenant views declaring the chat and upload
throttle scopes, so the scopes are tested through real DRF dispatch whatever
the apps' own views declare."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from agent_project.routing import api_path
from agent_project.urls import urlpatterns as project_urlpatterns
from tenants.viewsets import TenantAPIView


class ChatScoped(TenantAPIView):
    throttle_scope = "chat"

    @extend_schema(exclude=True)
    def post(self, request):
        return Response({"tenant": self.tenant.pk})


class UploadScoped(TenantAPIView):
    throttle_scope = "upload"

    @extend_schema(exclude=True)
    def post(self, request):
        return Response({"tenant": self.tenant.pk})


urlpatterns = [
    api_path("scoped-test/chat", ChatScoped.as_view()),
    api_path("scoped-test/upload", UploadScoped.as_view()),
    *project_urlpatterns,
]
