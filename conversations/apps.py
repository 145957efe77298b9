from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        # The layers below learn of conversations here instead of importing this app: the lib's
        # registry of the offline provider (it writes answers from the knowledge base, a domain
        # job), and contacts' check that a log's conversation_id is the tenant's.
        from agent_project.lib.llm import register_provider
        from contacts.links import register_conversation_lookup
        from conversations.offline import OFFLINE_LABEL, offline_chat_model
        from conversations.selectors import conversation_exists

        register_provider("offline", offline_chat_model, label=OFFLINE_LABEL)
        register_conversation_lookup(conversation_exists)
