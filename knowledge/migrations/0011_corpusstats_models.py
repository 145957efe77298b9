"""CorpusStats.models: the tenant's chunks per embedding model, filled from the chunks (one
grouped scan of the chunk table). A column default of {} keeps the raw INSERTs of the write
path valid."""

from django.db import migrations, models

FILL = """
UPDATE knowledge_corpusstats s SET models = m.models
FROM (SELECT tenant_id, jsonb_object_agg(embedding_model, n) AS models
      FROM (SELECT tenant_id, embedding_model, count(*) AS n FROM knowledge_chunk GROUP BY 1, 2) c
      GROUP BY tenant_id) m
WHERE m.tenant_id = s.tenant_id
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0010_chunk_in_hnsw_trigger")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE knowledge_corpusstats ADD COLUMN models jsonb NOT NULL DEFAULT '{}'::jsonb",
                    reverse_sql="ALTER TABLE knowledge_corpusstats DROP COLUMN models"),
            ],
            state_operations=[
                migrations.AddField(model_name="corpusstats", name="models", field=models.JSONField(
                    default=dict, editable=False, help_text="Chunks per embedding model: {model name: count}.")),
            ],
        ),
        migrations.RunSQL(FILL, reverse_sql=migrations.RunSQL.noop),
    ]
