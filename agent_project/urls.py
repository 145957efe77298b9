from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agent_project.adminlogin import ThrottledAdminLoginForm
from agent_project.health import HealthView
from agent_project.metrics import metrics_view
from agent_project.routing import api_path

urlpatterns = [
    path("admin/", admin.site.urls),
    api_path("health", HealthView.as_view(), name="health"),
    api_path("metrics", metrics_view, name="metrics"),
    api_path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves Swagger UI's start-up script as a URL (?script=), not inline: the CSP allows no inline script
    api_path("api/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("", include("tenants.urls")),
    path("", include("knowledge.urls")),
    path("", include("contacts.urls")),
    path("", include("conversations.urls")),
    path("", include("followups.urls")),
    path("", include("channels.urls")),
    path("", include("tools.urls")),
]

admin.site.login_form = ThrottledAdminLoginForm
admin.site.site_header = "Layan operator console"
admin.site.site_title = "Layan"
admin.site.index_title = "Tenants, knowledge, conversations and follow-ups"
