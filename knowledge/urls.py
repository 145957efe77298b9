from agent_project.routing import api_path
from knowledge.api import DocumentViewSet, KbSearchView, KbUploadView, KbUpsertView

urlpatterns = [
    api_path(r"kb/upsert", KbUpsertView.as_view(), name="kb-upsert"),
    api_path(r"kb/upload", KbUploadView.as_view(), name="kb-upload"),
    api_path(r"kb/search", KbSearchView.as_view(), name="kb-search"),
    api_path(r"kb/documents", DocumentViewSet.as_view({"get": "list"}), name="kb-documents"),
    api_path(r"kb/documents/(?P<pk>\d+)", DocumentViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
             name="kb-document"),
]
