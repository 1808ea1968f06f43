"""Fetch the vetted crypto C sources the host and QEMU firmware build on (never committed).

Two PyPI source distributions, pinned by version and sha256, ship the C we need:

- `pymonocypher` 4.0.3.5 ships Monocypher 4.0.3 (`monocypher.c/.h`): X25519 and the IETF
  ChaCha20-Poly1305 AEAD (RFC 8439).
- `pynacl` 1.6.2 ships libsodium: its HKDF-SHA-256 (RFC 5869), HMAC-SHA-256 and portable
  SHA-256 files. Monocypher's core file has no SHA-2, and HKDF-SHA-256 is what Python's
  `cryptography` and the ESP32's mbedTLS offer, so the three sides derive keys the same way.

`pip download` fetches each sdist (from PyPI or the configured mirror), the sha256 is checked,
and only the files the firmware compiles are extracted into build/third_party/. Idempotent: a
complete extraction whose stamp matches the pins is left alone.
Run: python boards/scripts/third_party.py (./fedhead setup does).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THIRD_PARTY = ROOT / "build" / "third_party"
MONOCYPHER_DIR = THIRD_PARTY / "monocypher"
LIBSODIUM_DIR = THIRD_PARTY / "libsodium"
_SODIUM = "src/libsodium/src/libsodium"


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    sha256: str
    target: Path
    members: tuple[str, ...]  # paths inside the sdist's top folder, copied flat into target

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tar.gz"


SDISTS = (
    Sdist(
        "pymonocypher",
        "4.0.3.5",
        "b6f96c4fa56212a7c13aee8fc27a89d7531b622ce8aabbd6e82a9d2e93071d71",
        MONOCYPHER_DIR,
        ("monocypher.c", "monocypher.h", "LICENSE.txt"),
    ),
    Sdist(
        "pynacl",
        "1.6.2",
        "018494d6d696ae03c7e656e5e74cdfd8ea1326962cc401bcf018f1ed8436811c",
        LIBSODIUM_DIR,
        (
            f"{_SODIUM}/crypto_kdf/hkdf/kdf_hkdf_sha256.c",
            f"{_SODIUM}/crypto_auth/hmacsha256/auth_hmacsha256.c",
            f"{_SODIUM}/crypto_hash/sha256/cp/hash_sha256_cp.c",
            f"{_SODIUM}/include/sodium/crypto_kdf_hkdf_sha256.h",
            f"{_SODIUM}/include/sodium/crypto_kdf_hkdf_sha512.h",
            f"{_SODIUM}/include/sodium/crypto_kdf.h",
            f"{_SODIUM}/include/sodium/crypto_kdf_blake2b.h",
            f"{_SODIUM}/include/sodium/crypto_auth_hmacsha256.h",
            f"{_SODIUM}/include/sodium/crypto_auth_hmacsha512.h",
            f"{_SODIUM}/include/sodium/crypto_hash_sha256.h",
            f"{_SODIUM}/include/sodium/crypto_hash_sha512.h",
            f"{_SODIUM}/include/sodium/crypto_verify_32.h",
            f"{_SODIUM}/include/sodium/randombytes.h",
            f"{_SODIUM}/include/sodium/utils.h",
            f"{_SODIUM}/include/sodium/export.h",
            f"{_SODIUM}/include/sodium/private/common.h",
            "src/libsodium/LICENSE",
        ),
    ),
)

# What the firmware builds compile (tests/support/firmware.py and the PlatformIO script).
SOURCES = (
    MONOCYPHER_DIR / "monocypher.c",
    LIBSODIUM_DIR / "kdf_hkdf_sha256.c",
    LIBSODIUM_DIR / "auth_hmacsha256.c",
    LIBSODIUM_DIR / "hash_sha256_cp.c",
)
INCLUDE_DIRS = (MONOCYPHER_DIR, LIBSODIUM_DIR)
# libsodium's portable files are configured by these instead of its ./configure.
DEFINES = ("CONFIGURED=1", "NATIVE_LITTLE_ENDIAN=1")


def _stamp(sdist: Sdist) -> Path:
    return sdist.target / ".fedhead-sdist"


def _is_current(sdist: Sdist) -> bool:
    stamp = _stamp(sdist)
    if not stamp.is_file() or stamp.read_text().strip() != sdist.sha256:
        return False
    return all((sdist.target / _flat_name(m)).is_file() for m in sdist.members)


def _flat_name(member: str) -> str:
    # private/common.h keeps its folder: libsodium includes it as "private/common.h".
    return "private/common.h" if member.endswith("private/common.h") else Path(member).name


def _download(sdist: Sdist, folder: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        "--no-build-isolation", "--ignore-requires-python", "--dest", str(folder),
        f"{sdist.name}=={sdist.version}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    archive = folder / sdist.filename
    if result.returncode != 0 or not archive.is_file():
        raise SystemExit(
            f"could not download the {sdist.name} {sdist.version} sdist from PyPI:\n"
            f"{result.stderr[-2000:]}\nCheck the network or pip's index settings and run again."
        )
    return archive


def _extract(sdist: Sdist, archive: Path) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sdist.sha256:
        raise SystemExit(
            f"{archive.name}: sha256 {digest} differs from the pinned {sdist.sha256}; "
            "refusing to build crypto from it. Delete the file and run again."
        )
    top = f"{sdist.name}-{sdist.version}"
    with tarfile.open(archive) as tar:
        for member in sdist.members:
            data = tar.extractfile(f"{top}/{member}")
            if data is None:
                raise SystemExit(f"{archive.name} lacks {member}")
            out = sdist.target / _flat_name(member)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data.read())
    _stamp(sdist).write_text(sdist.sha256 + "\n")


def ensure() -> None:
    """Download and extract whatever is missing or stale; quick when all is in place."""
    for sdist in SDISTS:
        if _is_current(sdist):
            continue
        sdist.target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            _extract(sdist, _download(sdist, Path(tmp)))
        print(f"third_party: {sdist.name} {sdist.version} -> {sdist.target.relative_to(ROOT)}")


if __name__ == "__main__":
    ensure()
