"""The vector column's size follows EMBEDDING_DIMENSIONS (``models.EmbeddingField``),
so the migration state stops recording it; nothing changes in the database (the
column 0001 created stays ``vector(384)`` until ``kb_reembed --resize``)."""

from django.db import migrations

import knowledge.models


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0005_corpusstats_version")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="chunk", name="embedding", field=knowledge.models.EmbeddingField()),
            ],
        ),
    ]
