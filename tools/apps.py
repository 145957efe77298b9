from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "tools"
    label = "tools"
    verbose_name = "Agent tools (shipping tracking, shop look-ups)"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from tools.models import ShippingConfig, TenantTool, config_updated
        from tools.registry import tenant_config_changed

        def changed(sender, instance, **kwargs):
            tenant_config_changed([instance.tenant_id])

        def updated(sender, tenant_ids, **kwargs):
            tenant_config_changed(tenant_ids)

        for model in (TenantTool, ShippingConfig):
            post_save.connect(changed, sender=model, dispatch_uid=f"tools-config-{model.__name__}-save")
            post_delete.connect(changed, sender=model, dispatch_uid=f"tools-config-{model.__name__}-delete")
        config_updated.connect(updated, dispatch_uid="tools-config-bulk-update")
