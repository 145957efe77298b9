from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scopes_disabled
from tqdm import tqdm

from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge.management.tenants import add_tenant_arguments, tenants_from_options
from knowledge.models import Chunk
from knowledge.services.reembed import chunks_reembed, reembed_check, tenants_to_reembed, vectors_resize
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = ("Re-embed knowledge chunks with the configured embedder (EMBEDDING_PROVIDER / EMBEDDING_MODEL_NAME) after "
            "the model changed, one tenant at a time: a tenant's new vectors are staged in batches that commit one by "
            "one (an interrupted run resumes where it stopped) and swapped in at once, so its searches never compare "
            "two models' vectors. Only chunks another model embedded are touched unless --force. Name a tenant with "
            "--tenant, or pass --all-tenants (a cross-tenant job; tenants already on the model are skipped). After "
            "EMBEDDING_DIMENSIONS changed, run it once with --all-tenants --resize: it gives the vector column the "
            "new size and re-embeds everything.")

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
        try:
            embedder = get_embedder()
            reembed_check()
        except EmbeddingError as exc:
            raise CommandError(str(exc)) from None
        tenants = tenants_from_options(options)
        with scopes_disabled():  # which tenants need it: their statistics rows, read across tenants by design
            waiting = dict(tenants_to_reembed(force=options["force"]))
        todo = [t for t in tenants if t.pk in waiting]
        self.stdout.write(f"{len(todo)} of {len(tenants)} tenant(s) have chunks to move to {embedder.name} "
                          f"({sum(waiting[t.pk] for t in todo)} chunk(s))")
        moved = resumed = failed = 0
        started = time.monotonic()
        for tenant in todo:
            began = time.monotonic()
            with tenant_scope(tenant), tqdm(total=waiting[tenant.pk], unit="chunk", desc=tenant.pk,
                                            disable=options["no_progress"], file=sys.stderr) as bar:
                try:
                    result = chunks_reembed(tenant=tenant, force=options["force"], batch_size=options["batch_size"],
                                            progress=bar.update)
                except EmbeddingError as exc:
                    failed += 1
                    self.stderr.write(f"{tenant.pk}: failed, nothing of it swapped ({exc}); run again to resume")
                    continue
            moved += result.chunks
            resumed += result.chunks - result.staged if result.chunks > result.staged else 0
            self.stdout.write(f"{tenant.pk}: {result.chunks} chunk(s) now on {result.model} "
                              f"({result.staged} embedded now, {time.monotonic() - began:.1f} s)")
        self.stdout.write(f"re-embedded {moved} chunk(s) of {len(todo) - failed} tenant(s) with {embedder.name} in "
                          f"{time.monotonic() - started:.1f} s; {len(tenants) - len(todo)} tenant(s) already on it"
                          + (f"; {resumed} chunk(s) staged by an earlier run" if resumed else "")
                          + (f"; {failed} tenant(s) failed" if failed else ""))
        if failed:
            raise CommandError(f"{failed} tenant(s) could not be re-embedded; run the command again to resume")

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
