from __future__ import annotations

import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from agent_project.lib.embeddings import get_embedder
from knowledge.management.tenants import add_tenant_arguments, tenants_from_options
from knowledge.models import Chunk
from knowledge.services import chunks_reembed
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = ("Re-embed knowledge chunks with the current embedder (EMBEDDING_PROVIDER / EMBEDDING_MODEL_NAME) "
            "after the model changed. Only chunks embedded by another model are touched unless --force. "
            "Name a tenant with --tenant, or pass --all-tenants (a cross-tenant job). Batches commit one by one, "
            "so it can be interrupted and run again. The vector column's dimension is fixed by the migration: "
            "a model with another EMBEDDING_DIMENSIONS needs a migration first.")

    def add_arguments(self, parser):
        add_tenant_arguments(parser)
        parser.add_argument("--force", action="store_true", help="Re-embed even chunks already on this model.")
        parser.add_argument("--batch-size", type=int, default=256)

    def handle(self, *args, **options):
        tenants = tenants_from_options(options)
        embedder = get_embedder()
        total = 0
        for tenant in tenants:
            with tenant_scope(tenant):
                todo = Chunk.objects.all() if options["force"] else Chunk.objects.exclude(embedding_model=embedder.name)
                count = todo.count()
                if not count:
                    continue
                with tqdm(total=count, unit="chunk", desc=tenant.pk, disable=options["no_progress"],
                          file=sys.stderr) as bar:
                    total += chunks_reembed(tenant=tenant, force=options["force"], batch_size=options["batch_size"],
                                            progress=bar.update)
        self.stdout.write(f"re-embedded {total} chunk(s) with {embedder.name}")
