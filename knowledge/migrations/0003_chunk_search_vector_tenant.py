"""Add a tenant lexeme to every chunk's tsvector (see Chunk.search_vector).

Django cannot alter a generated column, so the database side drops and re-adds it
(PostgreSQL recomputes it for existing rows) with its GIN index."""

import django.contrib.postgres.search
from django.db import migrations, models

NEW_COLUMN = """
DROP INDEX IF EXISTS kb_chunk_search_gin;
ALTER TABLE knowledge_chunk DROP COLUMN search_vector;
ALTER TABLE knowledge_chunk ADD COLUMN search_vector tsvector GENERATED ALWAYS AS
    (to_tsvector('simple'::regconfig, "search_text" || ' tenant' || md5("tenant_id"))) STORED;
CREATE INDEX kb_chunk_search_gin ON knowledge_chunk USING gin (search_vector);
"""
OLD_COLUMN = """
DROP INDEX IF EXISTS kb_chunk_search_gin;
ALTER TABLE knowledge_chunk DROP COLUMN search_vector;
ALTER TABLE knowledge_chunk ADD COLUMN search_vector tsvector GENERATED ALWAYS AS
    (to_tsvector('simple'::regconfig, "search_text")) STORED;
CREATE INDEX kb_chunk_search_gin ON knowledge_chunk USING gin (search_vector);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('knowledge', '0002_chunk_embedding_storage_main'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(NEW_COLUMN, reverse_sql=OLD_COLUMN)],
            state_operations=[
                migrations.AlterField(
                    model_name='chunk',
                    name='search_vector',
                    field=models.GeneratedField(db_persist=True, expression=models.Func(models.F('search_text'), models.F('tenant_id'), arg_joiner=" || ' tenant' || md5(", output_field=django.contrib.postgres.search.SearchVectorField(), template="to_tsvector('simple'::regconfig, %(expressions)s))"), output_field=django.contrib.postgres.search.SearchVectorField()),
                ),
            ],
        ),
    ]
