"""Keep chunk vectors inline in the heap (STORAGE MAIN).

A chunk row (text, search_text, its tsvector and a 1.5 KB vector) passes the 2 KB
TOAST threshold, and with pgvector's default EXTENDED storage the incompressible
vector is what gets moved out of line: every distance computed in an exact scan
then paid for a TOAST lookup (~50 ms for a 10k-chunk tenant). With MAIN the
compressible text columns go out of line instead and the vector stays in the row.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE knowledge_chunk ALTER COLUMN embedding SET STORAGE MAIN",
            reverse_sql="ALTER TABLE knowledge_chunk ALTER COLUMN embedding SET STORAGE EXTENDED",
        ),
    ]
