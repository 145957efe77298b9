"""Keep the GIN indexes' pending lists small (64 kB instead of the 4 MB default).

With ``fastupdate`` a GIN index queues new entries in a pending list until it fills
(``gin_pending_list_limit``, 4 MB by default) or autovacuum merges it, and every
search scans the whole list. After an ingestion that was ~486 pages: the keyword
query of a 1,000-chunk tenant took 4.0 ms instead of 0.19 ms. 64 kB (PostgreSQL's
minimum) bounds that scan at a few hundred microseconds while inserts still merge
in batches. The indexes are changed in place (no rebuild) and their lists merged now.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations

INDEXES = ("kb_chunk_search_gin", "kb_term_trgm")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0003_chunk_search_vector_tenant")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    [f"ALTER INDEX {name} SET (gin_pending_list_limit = 64)" for name in INDEXES]
                    + [f"SELECT gin_clean_pending_list('{name}')" for name in INDEXES],
                    reverse_sql=[f"ALTER INDEX {name} RESET (gin_pending_list_limit)" for name in INDEXES],
                ),
            ],
            state_operations=[
                migrations.RemoveIndex(model_name="chunk", name="kb_chunk_search_gin"),
                migrations.AddIndex(model_name="chunk", index=GinIndex(
                    fields=["search_vector"], name="kb_chunk_search_gin", gin_pending_list_limit=64)),
                migrations.RemoveIndex(model_name="term", name="kb_term_trgm"),
                migrations.AddIndex(model_name="term", index=GinIndex(
                    fields=["term"], opclasses=["gin_trgm_ops"], name="kb_term_trgm", gin_pending_list_limit=64)),
            ],
        ),
    ]
