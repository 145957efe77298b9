"""What the knowledge base does when its tenant goes: the rows go by the database
cascade, the stored files of its documents here (they are not rows)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from tenants.models import Tenant


@receiver(pre_delete, sender=Tenant, dispatch_uid="knowledge-tenant-files")
def tenant_files_removed(sender, instance, using, **kwargs):
    """Delete the tenant's uploaded and imported files once its deletion commits (nothing
    if it rolls back), instead of leaving them in the media folder with no row naming them."""
    from knowledge.models import Document

    names = [name for name in Document._base_manager.using(using).filter(tenant_id=instance.pk)
             .exclude(source_file="").values_list("source_file", flat=True) if name]
    if not names:
        return
    storage = Document._meta.get_field("source_file").storage

    def remove():
        for name in names:
            storage.delete(name)

    transaction.on_commit(remove, using=using)
