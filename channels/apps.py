from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels and handoff"

    def ready(self) -> None:
        # followups sits below channels: it learns of the channel senders here instead of importing them.
        from channels.followup_senders import TelegramSender, WhatsAppSender
        from followups.senders import register_sender

        register_sender(WhatsAppSender.name, WhatsAppSender())
        register_sender(TelegramSender.name, TelegramSender())
