from agent_project.routing import api_path
from channels.api import ConversationHandoffView, ConversationReplyView, TelegramWebhookView, WhatsAppWebhookView

_TENANT = r"(?P<tenant_id>[-a-zA-Z0-9_]+)"

urlpatterns = [
    api_path(rf"channels/whatsapp/{_TENANT}/webhook", WhatsAppWebhookView.as_view(), name="channels-whatsapp"),
    api_path(rf"channels/telegram/{_TENANT}/webhook", TelegramWebhookView.as_view(), name="channels-telegram"),
    api_path(r"conversations/(?P<pk>\d+)/reply", ConversationReplyView.as_view(), name="conversation-reply"),
    api_path(r"conversations/(?P<pk>\d+)/handoff", ConversationHandoffView.as_view(), name="conversation-handoff"),
]
