from agent_project.routing import api_path
from tools.api import ToolListView

urlpatterns = [
    api_path("tools", ToolListView.as_view(), name="tool-list"),
]
