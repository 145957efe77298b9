from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge.ingestion.parsers import PARSERS, DocumentError
from knowledge.services.files import documents_import, readable_name
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _not_importable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (a broken link, a pipe or device: reading a FIFO
    would wait for ever, /dev/zero fill memory), or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "no such file"
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    return None if stat.S_ISREG(mode) else "not a regular file (a pipe, socket or device)"


def _files(paths: list[str]) -> tuple[list[Path], int, list[tuple[str, str]]]:
    """The files to import, how many files of other types the folders held, and what could not
    be looked at (path, reason), reported as failed: an unreadable folder, a broken link, a
    pipe. A file named on the command line is always tried, so an unsupported one is reported
    as failed instead of silently left out. Linked folders are followed, each folder once."""
    found, ignored, problems = [], 0, []
    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise CommandError(f"{raw}: no such file or directory")
        if not path.is_dir():
            why = _not_importable(path)
            if why:
                problems.append((str(path), why))
            else:
                found.append(path)
            continue
        seen = set()

        def unreadable(error: OSError):
            problems.append((error.filename, f"folder cannot be read: {error.strerror}"))

        for folder, dirs, names in os.walk(path, onerror=unreadable, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:  # a link back up the tree
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            for name in sorted(names):
                candidate = Path(folder, name)
                if candidate.suffix.lower().lstrip(".") not in PARSERS:
                    ignored += 1
                elif why := _not_importable(candidate):
                    problems.append((str(candidate), why))
                else:
                    found.append(candidate)
    return list(dict.fromkeys(p.resolve() for p in found)), ignored, problems


@contextmanager
def _stoppable(stderr):
    """SIGINT (Ctrl-C) and SIGTERM stop the import with its summary: each file is its own
    transaction, so the files already imported are kept and the one being written is rolled
    back; the files being embedded are waited for, and a second signal exits at once. Yields the
    signals received."""
    received: list[int] = []

    def stop(signum, frame):
        received.append(signum)
        if len(received) > 1:
            os._exit(128 + received[0])
        stderr.write("\nStopping: the files imported so far are kept, the one being written is rolled back; "
                     "waiting for the files being embedded (signal again to stop at once).\n")
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
        files, ignored, problems = _files(options["paths"])
        tags = [t.strip() for t in options["tags"].split(",") if t.strip()]
        rows: list[tuple[str, str, int, str]] = [(readable_name(path), "failed", 0, why) for path, why in problems]
        interrupted = False
        bar = tqdm(total=len(files), unit="file", disable=options["no_progress"], file=sys.stderr)
        try:
            with _stoppable(sys.stderr) as signals, tenant_scope(tenant):
                for done in documents_import(tenant=tenant, paths=files, tags=tags):
                    shown = readable_name(str(done.path))
                    bar.set_postfix_str(shown[-40:])
                    bar.update()
                    if done.result is not None:
                        rows.append((shown, done.result.outcome, done.result.document.chunk_count, ""))
                    elif isinstance(done.error, DocumentError):
                        rows.append((shown, "failed", 0, f"{done.error.code}: {done.error.message}"))
                    else:
                        rows.append((shown, "failed", 0, f"{done.error.__class__.__name__}: {done.error}"))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        self._summary(rows, interrupted, len(files) + len(problems), ignored)
        if interrupted:
            sys.exit(128 + (signals[0] if signals else signal.SIGINT))
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
