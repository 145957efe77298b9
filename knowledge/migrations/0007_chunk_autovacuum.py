"""Vacuum the chunk table after 1% of it is dead rows, not PostgreSQL's default 20%.

Deleted and re-ingested chunks stay in the HNSW graph until VACUUM removes them, and
every search walks past them: with 6.7k dead rows in a 200k-chunk table (3%, far below
the default's 40k trigger) the 100k-chunk tenant's vector p50 was 5.6-6.4 ms instead of
3.2-4.1, and a VACUUM of those rows took 4.7 s (docs/knowledge.md)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0006_chunk_embedding_field")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE knowledge_chunk "
            "SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000)",
            reverse_sql="ALTER TABLE knowledge_chunk "
                        "RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)",
        ),
    ]
