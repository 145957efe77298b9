from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scopes_disabled
from tqdm import tqdm

from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge.management.tenants import add_tenant_arguments, tenants_from_options
from knowledge.models import Chunk
from knowledge.services.reembed import chunks_reembed, vectors_resize
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = ("Re-embed knowledge chunks with the current embedder (EMBEDDING_PROVIDER / EMBEDDING_MODEL_NAME) "
            "after the model changed. Only chunks embedded by another model are touched unless --force. "
            "Name a tenant with --tenant, or pass --all-tenants (a cross-tenant job). Batches commit one by one, "
            "so it can be interrupted and run again. After EMBEDDING_DIMENSIONS changed, run it once with "
            "--all-tenants --resize: it gives the vector column the new size and re-embeds everything.")

    def add_arguments(self, parser):
        add_tenant_arguments(parser)
        parser.add_argument("--force", action="store_true", help="Re-embed even chunks already on this model.")
        parser.add_argument("--batch-size", type=int, default=256)
        parser.add_argument("--resize", action="store_true",
                            help="Give the vector column EMBEDDING_DIMENSIONS and re-embed every chunk (needs "
                                 "--all-tenants; the final swap locks the chunk table while the index is rebuilt).")

    def handle(self, *args, **options):
        if options["resize"]:
            return self._resize(options)
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
                    try:
                        total += chunks_reembed(tenant=tenant, force=options["force"],
                                                batch_size=options["batch_size"], progress=bar.update)
                    except EmbeddingError as exc:
                        raise CommandError(str(exc)) from None
        self.stdout.write(f"re-embedded {total} chunk(s) with {embedder.name}")

    def _resize(self, options):
        if not options["all_tenants"] or options["tenant"]:
            raise CommandError("--resize changes the column every tenant shares: pass --all-tenants (no --tenant).")
        embedder = get_embedder()
        with scopes_disabled():  # a cross-tenant job, by design
            total = Chunk.objects.count()
        with tqdm(total=total, unit="chunk", disable=options["no_progress"], file=sys.stderr) as bar:
            try:
                old, new, done = vectors_resize(batch_size=options["batch_size"], progress=bar.update)
            except EmbeddingError as exc:
                raise CommandError(str(exc)) from None
        if old == new and not done:
            self.stdout.write(f"the vector column already has {new} dimensions; nothing to resize")
            return
        self.stdout.write(f"vector column {old} -> {new} dimensions; re-embedded {done} chunk(s) with {embedder.name}")
