"""Build and run the libFuzzer targets (see tools/fuzz/__init__.py)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "fuzz" / "harness"
CORPUS = REPO / "tests" / "fuzz" / "corpus"
WORK = REPO / "build" / "fuzz"
FEDCORE = REPO / "firmware" / "lib" / "fedcore"
CLANG_CANDIDATES = ("clang-14", "clang")
TARGETS = ("decoder", "device-replay", "device-production")
# The replay profile (docs/ARCHITECTURE.md, build profiles).
REPLAY_DEFINES = ("FEDHEAD_PROFILE_REPLAY=1",)
FLAGS = (
    "-std=c11",
    "-O1",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffp-contract=off",
    "-fno-omit-frame-pointer",
    "-fsanitize=fuzzer,address,undefined",
    "-fno-sanitize-recover=all",
)
# The backbone's only input is a fixed-length int8 window (equivalence tests cover it): it is
# compiled optimized and uninstrumented, so the fuzzer spends its time in fedcore, not in convs.
BACKBONE_FLAGS = ("-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off")
MAX_INPUT_BYTES = 16384
SANITIZER_ENV = {
    "ASAN_OPTIONS": "abort_on_error=0:halt_on_error=1:detect_leaks=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


class FuzzError(RuntimeError):
    """The fuzzer could not be built or run."""


@dataclass(frozen=True)
class FuzzResult:
    target: str
    seconds: float
    executions: int
    crashes: list[Path]
    corpus_units: int
    log_tail: str

    @property
    def ok(self) -> bool:
        return not self.crashes


def clang() -> str:
    for name in CLANG_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise FuzzError(
        "clang is missing: run ./fedhead setup (it installs clang-14 and libclang-rt-14-dev)"
    )


@dataclass(frozen=True)
class _Sources:
    fuzzed: list[Path]  # instrumented: coverage, ASan, UBSan
    backbone: list[Path]  # optimized, uninstrumented
    includes: list[Path]
    defines: tuple[str, ...]


def _sources(target: str) -> _Sources:
    if target == "decoder":
        names = ("link.c", "cobs.c", "crc32.c")
        sources = [FEDCORE / "src" / n for n in names]
        return _Sources(
            [*sources, HARNESS / "wire_check.c", HARNESS / "fuzz_decoder.c"],
            [],
            [FEDCORE / "include"],
            (),
        )
    from tests.support.firmware import generated_dir
    from tests.support.third_party import CRYPTO_PORT_SOURCES, crypto_include_dirs

    generated = generated_dir()
    # fedcore's crypto contract on the vetted libraries, as the host port links it: our glue is
    # fuzzed, the library sources themselves (third_party_*.c) are compiled with the backbone.
    glue = [c for c in CRYPTO_PORT_SOURCES if not c.name.startswith("third_party_")]
    libraries = [c for c in CRYPTO_PORT_SOURCES if c.name.startswith("third_party_")]
    fuzzed = [
        *(p for p in sorted((FEDCORE / "src").glob("*.c")) if p.name != "device.c"),
        *glue,
        REPO / "firmware" / "ports" / "common" / "ram_store.c",
        generated / "head_init.c",
        HARNESS / "wire_check.c",
        HARNESS / "fuzz_device.c",  # includes device.c
    ]
    backbone = [
        *sorted((REPO / "firmware" / "lib" / "backbone_ref" / "src").glob("*.c")),
        generated / "backbone_ref_model.c",
        *libraries,
    ]
    includes = [
        FEDCORE / "include",
        REPO / "firmware" / "lib" / "backbone_ref" / "include",
        generated,
        HARNESS,
        *crypto_include_dirs(),
    ]
    defines = REPLAY_DEFINES if target == "device-replay" else ()
    return _Sources(fuzzed, backbone, includes, defines)


def build(target: str) -> Path:
    """The fuzzer executable of `target` (cached by a hash of sources, headers and flags)."""
    if target not in TARGETS:
        raise FuzzError(f"unknown fuzz target {target!r}; choose one of {', '.join(TARGETS)}")
    src = _sources(target)
    common = [*(f"-D{d}" for d in src.defines), *(f"-I{i}" for i in src.includes)]
    flags = [*FLAGS, *common]
    digest = hashlib.sha256(" ".join([*flags, *BACKBONE_FLAGS]).encode())
    headers = [h for i in src.includes for h in sorted(Path(i).rglob("*.h"))]
    for path in [*src.fuzzed, *src.backbone, *headers, FEDCORE / "src" / "device.c"]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    folder = WORK / target
    exe = folder / f"fuzz-{digest.hexdigest()[:16]}"
    if exe.exists():
        return exe
    folder.mkdir(parents=True, exist_ok=True)
    tmp = exe.with_suffix(f".tmp{os.getpid()}")
    objects = []
    for source in src.backbone:
        obj = tmp.with_name(f"{tmp.name}-{source.stem}.o")
        _compile(target, [clang(), *BACKBONE_FLAGS, *common, "-c", str(source), "-o", str(obj)])
        objects.append(obj)
    _compile(target, [clang(), *flags, *map(str, [*src.fuzzed, *objects]), "-o", str(tmp), "-lm"])
    for obj in objects:
        obj.unlink()
    tmp.replace(exe)
    return exe


def _compile(target: str, cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FuzzError(f"building fuzz target {target} failed:\n{' '.join(cmd)}\n{result.stderr}")


def _fuzz_env() -> dict[str, str]:
    return {**os.environ, **SANITIZER_ENV}


def run(target: str, seconds: int, jobs_dir: Path | None = None) -> FuzzResult:
    """Fuzz `target` for `seconds` from its seed corpus; crashes land in build/fuzz/<target>/."""
    exe = build(target)
    folder = jobs_dir or WORK / target
    work_corpus = folder / "corpus"  # new units go here, the repo's seeds stay as they are
    crashes = folder / "crashes"
    for path in (work_corpus, crashes):
        path.mkdir(parents=True, exist_ok=True)
    seeds = CORPUS / target
    if not any(seeds.glob("*")):
        raise FuzzError(f"no seed corpus in {seeds}: run `invoke fuzz --seeds` first")
    before = set(crashes.iterdir())
    cmd = [
        str(exe),
        str(work_corpus),
        str(seeds),
        f"-max_total_time={seconds}",
        f"-max_len={MAX_INPUT_BYTES}",
        "-timeout=30",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=_fuzz_env(), timeout=seconds + 300
    )
    log = result.stderr
    found = sorted(set(crashes.iterdir()) - before)
    if result.returncode != 0 and not found:
        raise FuzzError(f"fuzzer {target} exited {result.returncode}:\n{log[-4000:]}")
    return FuzzResult(
        target,
        seconds,
        _stat(log, "stat::number_of_executed_units"),
        found,
        len(list(work_corpus.iterdir())),
        log[-4000:],
    )


def replay(target: str, inputs: list[Path]) -> None:
    """Run the target once on each file (no fuzzing); raises FuzzError on a finding."""
    exe = build(target)
    result = subprocess.run(
        [str(exe), *map(str, inputs)], capture_output=True, text=True, env=_fuzz_env(), timeout=600
    )
    if result.returncode != 0:
        raise FuzzError(f"{target} fails on its corpus:\n{result.stderr[-4000:]}")


def _stat(log: str, name: str) -> int:
    found = re.search(rf"{name}:\s*(\d+)", log)
    return int(found.group(1)) if found else 0
