from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge.ingestion.parsers import PARSERS, DocumentError
from knowledge.services import documents_import
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _files(paths: list[str]) -> tuple[list[Path], int]:
    """The files to import and how many files of other types the folders held. A file
    named on the command line is always tried, so an unsupported one is reported as failed
    instead of silently left out."""
    found, ignored = [], 0
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CommandError(f"{raw}: no such file or directory")
        if not path.is_dir():
            found.append(path)
            continue
        for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
            if candidate.suffix.lower().lstrip(".") in PARSERS:
                found.append(candidate)
            else:
                ignored += 1
    return list(dict.fromkeys(p.resolve() for p in found)), ignored


class Command(BaseCommand):
    help = ("Import every supported file (pdf, xlsx, csv, tsv, md, txt) under the given paths into one tenant's "
            "knowledge base. Files whose content is already stored are skipped (checksum); a file imported "
            "before whose content changed is re-processed in place. Each file is its own transaction, so an "
            "interrupted import keeps what it finished; the next file is embedded while one is written. "
            "Prints a summary; exits 1 if any file failed.")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Files or folders (walked recursively).")
        parser.add_argument("--tenant", required=True, help="The tenant's slug (its tenant_id).")
        parser.add_argument("--tags", default="", help="Comma-separated tags for new documents.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(pk=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['tenant']}'.")
        files, ignored = _files(options["paths"])
        tags = [t.strip() for t in options["tags"].split(",") if t.strip()]
        rows: list[tuple[str, str, int, str]] = []  # file, outcome, chunks, reason
        interrupted = False
        bar = tqdm(total=len(files), unit="file", disable=options["no_progress"], file=sys.stderr)
        try:
            with tenant_scope(tenant):
                for done in documents_import(tenant=tenant, paths=files, tags=tags):
                    bar.set_postfix_str(done.path.name[-40:])
                    bar.update()
                    if done.result is not None:
                        rows.append((str(done.path), done.result.outcome, done.result.document.chunk_count, ""))
                    elif isinstance(done.error, DocumentError):
                        rows.append((str(done.path), "failed", 0, f"{done.error.code}: {done.error.message}"))
                    else:
                        rows.append((str(done.path), "failed", 0, f"{done.error.__class__.__name__}: {done.error}"))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        self._summary(rows, interrupted, len(files), ignored)
        if interrupted:
            sys.exit(130)
        if any(outcome == "failed" for _, outcome, _, _ in rows):
            sys.exit(1)

    def _summary(self, rows, interrupted: bool, total: int, ignored: int) -> None:
        out = self.stdout
        width = max([len("file")] + [len(r[0]) for r in rows])
        out.write(f"{'file'.ljust(width)}  {'outcome':<8}  {'chunks':>6}  reason")
        for path, outcome, chunks, reason in rows:
            out.write(f"{path.ljust(width)}  {outcome:<8}  {chunks:>6}  {reason}")
        counts = {k: sum(1 for r in rows if r[1] == k) for k in ("created", "updated", "skipped", "failed")}
        out.write(f"\nimported {counts['created'] + counts['updated']} (created {counts['created']}, "
                  f"updated {counts['updated']}), skipped {counts['skipped']} unchanged, failed {counts['failed']}"
                  + (f" — interrupted after {len(rows)} of {total} files" if interrupted else "")
                  + (f"; {ignored} file(s) of other types in the folders ignored" if ignored else ""))
