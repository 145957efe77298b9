"""A version on each tenant's corpus statistics, drawn from a sequence, that every
change to the tenant's chunks moves (see ``CorpusStats.version``)."""

from django.db import migrations, models

import knowledge.models


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0004_gin_pending_list_limit")]

    operations = [
        migrations.RunSQL("CREATE SEQUENCE knowledge_corpus_version_seq",
                          reverse_sql="DROP SEQUENCE knowledge_corpus_version_seq"),
        migrations.AddField(
            model_name="corpusstats",
            name="version",
            field=models.BigIntegerField(db_default=knowledge.models.NextCorpusVersion(), editable=False),
        ),
    ]
