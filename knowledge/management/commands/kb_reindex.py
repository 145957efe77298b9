from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge.management.tenants import add_tenant_arguments, tenants_from_options
from knowledge.models import Chunk
from knowledge.services.stats import chunks_reanalyse, stats_check, stats_rebuild
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = ("Check or rebuild a tenant's keyword index: the BM25 statistics (each term's document frequency, the "
            "chunk count and total length) recomputed from its chunks, and with --reanalyse every chunk's stored "
            "search terms re-derived from its text first (after a change to the analyser: stemmer, tokens). "
            "--check changes nothing and exits 1 if the statistics differ from the chunks. Name a tenant with "
            "--tenant, or pass --all-tenants (a cross-tenant job).")

    def add_arguments(self, parser):
        add_tenant_arguments(parser)
        parser.add_argument("--check", action="store_true", help="Only report differences; exit 1 if there are any.")
        parser.add_argument("--reanalyse", action="store_true", help="Re-derive the chunks' search terms first.")

    def handle(self, *args, **options):
        if options["check"] and options["reanalyse"]:
            raise CommandError("--check changes nothing; --reanalyse rewrites the chunks. Choose one.")
        tenants = tenants_from_options(options)
        drifted = 0
        for tenant in tenants:
            with tenant_scope(tenant):
                if options["check"]:
                    check = stats_check(tenant=tenant)
                elif options["reanalyse"]:
                    with tqdm(total=Chunk.objects.count(), unit="chunk", desc=tenant.pk,
                              disable=options["no_progress"], file=sys.stderr) as bar:
                        changed = chunks_reanalyse(tenant=tenant, progress=bar.update)
                    self.stdout.write(f"{tenant.pk}: {changed} chunk(s) re-analysed")
                    check = stats_check(tenant=tenant)
                else:
                    check = stats_rebuild(tenant=tenant)
            drifted += not check.ok
            verb = "differs" if options["check"] else "differed (rebuilt)"
            state = "matches its chunks" if check.ok else (
                f"{verb}: chunks {check.chunk_count[0]} stored / {check.chunk_count[1]} actual, tokens "
                f"{check.token_total[0]} / {check.token_total[1]}, {check.terms_wrong} of {check.terms_total} "
                f"terms' frequencies, {check.outside_graph} chunk(s) missing from the HNSW graph"
                + ("" if check.models[0] == check.models[1] else
                   f", chunks per model {check.models[0]} stored / {check.models[1]} actual"))
            self.stdout.write(f"{tenant.pk}: keyword statistics {state}")
        if options["check"] and drifted:
            sys.exit(1)
