"""The webhook secret joins the channel secrets encrypted at rest: the column becomes text
holding a Fernet token, and every stored plaintext secret is encrypted in place."""

from django.db import migrations

import agent_project.lib.encryption
import tenants.models
from agent_project.lib.encryption import PREFIX, decrypt, encrypt


def encrypt_existing(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, webhook_secret FROM tenants_tenant WHERE webhook_secret <> '' "
                       "AND webhook_secret NOT LIKE %s", [PREFIX + "%"])
        for tenant_id, plain in cursor.fetchall():
            cursor.execute("UPDATE tenants_tenant SET webhook_secret = %s WHERE id = %s", [encrypt(plain), tenant_id])


def decrypt_existing(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, webhook_secret FROM tenants_tenant WHERE webhook_secret LIKE %s", [PREFIX + "%"])
        for tenant_id, stored in cursor.fetchall():
            cursor.execute("UPDATE tenants_tenant SET webhook_secret = %s WHERE id = %s",
                           [decrypt(stored)[:128], tenant_id])


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0005_tenant_synonyms"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tenant",
            name="webhook_secret",
            field=agent_project.lib.encryption.EncryptedTextField(
                blank=True, default=tenants.models._webhook_secret,
                help_text="HMAC-SHA256 key for the X-Layan-Signature header (encrypted at rest, like the channel "
                          "secrets)."),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
