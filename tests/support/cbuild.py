"""Build small C driver programs for tests, with warnings as errors and sanitizers.

Every C test goes through here so that all C under test is compiled the same way:
C11, -Wall -Wextra -Werror, AddressSanitizer and UndefinedBehaviorSanitizer that abort
on the first finding. Executables are cached under build/tests/ by a hash of the sources,
headers and flags, so a test session only recompiles what changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "tests" / "c"
BASE_FLAGS = (
    "-std=c11",
    "-O1",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
)
# Sanitizer settings for running the drivers: fail loudly, never continue after a finding.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "abort_on_error=0:halt_on_error=1:detect_leaks=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


def _header_files(include_dirs: Iterable[Path]) -> list[Path]:
    headers: list[Path] = []
    for directory in include_dirs:
        headers.extend(sorted(Path(directory).rglob("*.h")))
    return headers


def build_c_program(
    name: str,
    sources: Sequence[Path | str],
    include_dirs: Sequence[Path | str] = (),
    defines: Sequence[str] = (),
    extra_flags: Sequence[str] = (),
    libs: Sequence[str] = ("-lm",),
) -> Path:
    """Compile `sources` into an executable and return its path (cached by content hash)."""
    srcs = [Path(s).resolve() for s in sources]
    incs = [Path(i).resolve() for i in include_dirs]
    flags = [*BASE_FLAGS, *extra_flags, *(f"-D{d}" for d in defines), *(f"-I{i}" for i in incs)]
    digest = hashlib.sha256()
    for path in [*srcs, *_header_files(incs)]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    digest.update(" ".join([*flags, *libs]).encode())
    out = CACHE / f"{name}-{digest.hexdigest()[:16]}"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    cmd = ["gcc", *flags, *map(str, srcs), "-o", str(tmp), *libs]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"C build of {name} failed:\n{' '.join(cmd)}\n{result.stderr}")
    tmp.replace(out)
    return out


def run_c_program(
    exe: Path, args: Sequence[str] = (), stdin: bytes = b"", timeout: float = 120
) -> bytes:
    """Run a driver under the sanitizers; raise with its stderr when it fails."""
    env = {**os.environ, **SANITIZER_ENV}
    result = subprocess.run(
        [str(exe), *args], input=stdin, capture_output=True, timeout=timeout, env=env
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{exe.name} exited {result.returncode}:\n{result.stderr.decode(errors='replace')}"
        )
    return result.stdout
