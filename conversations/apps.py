from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        # The offline provider writes answers from the knowledge base (a domain job): the lib's
        # registry learns of it here instead of importing this app.
        from agent_project.lib.llm import register_provider
        from conversations.offline import OFFLINE_LABEL, offline_chat_model

        register_provider("offline", offline_chat_model, label=OFFLINE_LABEL)
