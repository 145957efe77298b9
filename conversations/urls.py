from agent_project.routing import api_path
from conversations.api import ChatView, ConversationViewSet, FeedbackView

urlpatterns = [
    api_path("chat", ChatView.as_view(), name="chat"),
    api_path("conversations", ConversationViewSet.as_view({"get": "list"}), name="conversation-list"),
    api_path(r"conversations/(?P<pk>\d+)", ConversationViewSet.as_view({"get": "retrieve"}),
             name="conversation-detail"),
    api_path(r"conversations/(?P<pk>\d+)/messages/(?P<mid>\d+)/feedback", FeedbackView.as_view(),
             name="message-feedback"),
]
