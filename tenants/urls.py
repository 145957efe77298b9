from agent_project.routing import api_path
from tenants.api import TenantSettingsView

urlpatterns = [
    api_path(r"tenants/(?P<tenant_id>[^/]+)/settings", TenantSettingsView.as_view(), name="tenant-settings"),
]
