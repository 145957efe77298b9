from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels and handoff"

    def ready(self) -> None:
        # conversations, followups and tenants sit below channels: they learn of the channels' parts here
        # instead of importing them.
        from channels.followup_senders import TelegramSender, WhatsAppSender
        from channels.handoff.chat import chat_handoff_after, chat_handoff_before
        from channels.services import channel_config_public, channel_config_update
        from conversations.handoff import register_chat_handoff
        from followups.senders import register_sender
        from tenants.sections import SettingsSection, register_settings_section

        register_chat_handoff(before=chat_handoff_before, after=chat_handoff_after)
        register_sender(WhatsAppSender.name, WhatsAppSender())
        register_sender(TelegramSender.name, TelegramSender())
        register_settings_section(SettingsSection(
            name="channels", read=channel_config_public, write=channel_config_update,
            help_text='{"whatsapp": {enabled, phone_number_id, access_token, app_secret, verify_token, '
                      'followup_template, template_language}, "telegram": {enabled, bot_token, webhook_secret}}; '
                      "secrets are write-only and read back masked."))
