"""A chunk inserted for a tenant in the HNSW graph goes into the graph, whoever writes it.

The write path sets ``Chunk.in_hnsw`` itself (``knowledge.services._write_chunks``). A writer that does
not (a process of the release before 0009 still running after the migration, a bulk load by hand)
left a big tenant's chunk outside the graph, missing from its vector results with nothing to report
it (found in review). This trigger costs one primary-key lookup per row written without the flag.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0009_chunk_in_hnsw")]

    operations = [
        migrations.RunSQL(
            """
            CREATE FUNCTION knowledge_chunk_in_hnsw() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NOT NEW.in_hnsw THEN
                    NEW.in_hnsw := EXISTS (SELECT 1 FROM knowledge_corpusstats s
                                           WHERE s.tenant_id = NEW.tenant_id AND s.in_hnsw);
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER knowledge_chunk_in_hnsw BEFORE INSERT ON knowledge_chunk
                FOR EACH ROW EXECUTE FUNCTION knowledge_chunk_in_hnsw();
            """,
            reverse_sql="DROP TRIGGER knowledge_chunk_in_hnsw ON knowledge_chunk; "
                        "DROP FUNCTION knowledge_chunk_in_hnsw();",
        ),
    ]
