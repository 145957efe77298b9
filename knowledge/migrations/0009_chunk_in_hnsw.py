"""Only big tenants' chunks in the HNSW graph.

A tenant of at most 10,000 chunks (``selectors.EXACT_SCAN_MAX_CHUNKS``) is searched exactly and
never reads the graph, yet each of its chunks cost ~1 ms of graph inserts when written, and its
neighbours were part of every big tenant's scan. The index now holds the chunks whose
``in_hnsw`` is set: all of a tenant's, from the write that takes it past the threshold
(``CorpusStats.in_hnsw``). Here the tenants already past it are flagged, between dropping the
old index (so the flags cost no graph inserts) and building the new one: the build reads only
their chunks (migration 0010 adds a trigger that flags any row inserted for a tenant in the graph).

The migration holds the chunk table locked (ACCESS EXCLUSIVE: searches wait too, not only writes)
until it commits: dropping the index, flagging the big tenants' rows and building the new index
(200k-chunk benchmark table: ~30 s of index build on 2 cores, plus ~1 ms per flagged chunk).
Plan it as a maintenance window on a big deployment (docs/ops.md).
"""

import pgvector.django.indexes
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('knowledge', '0008_document_attempts'),
        ('tenants', '0005_tenant_synonyms'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='chunk',
            name='kb_chunk_embedding_hnsw',
        ),
        migrations.AddField(
            model_name='chunk',
            name='in_hnsw',
            field=models.BooleanField(db_default=False, default=False, help_text='In the HNSW graph: every chunk of a tenant whose CorpusStats.in_hnsw is set.'),
        ),
        migrations.AddField(
            model_name='corpusstats',
            name='in_hnsw',
            field=models.BooleanField(db_default=False, default=False, editable=False, help_text="The tenant's chunks are in the HNSW graph (it is big enough to search it)."),
        ),
        migrations.RunSQL(
            "UPDATE knowledge_corpusstats SET in_hnsw = true WHERE chunk_count > 10000",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "UPDATE knowledge_chunk c SET in_hnsw = true FROM knowledge_corpusstats s "
            "WHERE s.tenant_id = c.tenant_id AND s.in_hnsw",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name='chunk',
            index=pgvector.django.indexes.HnswIndex(condition=models.Q(('in_hnsw', True)), ef_construction=64, fields=['embedding'], m=16, name='kb_chunk_embedding_hnsw', opclasses=['vector_cosine_ops']),
        ),
    ]
