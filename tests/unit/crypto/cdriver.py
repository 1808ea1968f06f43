"""Build and call crypto_driver.c: fedcore/platform/crypto.h as the host and QEMU ports build it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from tests.support.cbuild import REPO, build_c_program, run_c_program
from tests.support.third_party import CRYPTO_PORT_SOURCES, crypto_include_dirs

DRIVER = Path(__file__).with_name("crypto_driver.c")
FEDCORE_INCLUDE = REPO / "firmware" / "lib" / "fedcore" / "include"


@cache
def driver() -> Path:
    return build_c_program(
        "crypto_driver",
        [DRIVER, *CRYPTO_PORT_SOURCES],
        include_dirs=[FEDCORE_INCLUDE, REPO / "tests" / "support", *crypto_include_dirs()],
        libs=(),
    )


def _hex(data: bytes) -> str:
    return data.hex() if data else "-"


def run_batch(commands: list[str]) -> list[bytes | None]:
    """One answer per command: bytes, or None where the driver answered ERR."""
    out = run_c_program(driver(), stdin=("\n".join(commands) + "\n").encode())
    answers: list[bytes | None] = []
    for line in out.decode().splitlines():
        answers.append(None if line == "ERR" else b"" if line == "-" else bytes.fromhex(line))
    assert len(answers) == len(commands)
    return answers


def x25519_public(secret_key: bytes) -> bytes | None:
    return run_batch([f"pub {_hex(secret_key)}"])[0]


def x25519_shared(secret_key: bytes, peer: bytes) -> bytes | None:
    return run_batch([f"shared {_hex(secret_key)} {_hex(peer)}"])[0]


def seal_cmd(key: bytes, nonce: bytes, ad: bytes, plain: bytes) -> str:
    return f"seal {_hex(key)} {_hex(nonce)} {_hex(ad)} {_hex(plain)}"


def open_cmd(key: bytes, nonce: bytes, ad: bytes, sealed: bytes) -> str:
    return f"open {_hex(key)} {_hex(nonce)} {_hex(ad)} {_hex(sealed)}"


def hkdf_cmd(salt: bytes, ikm: bytes, info: bytes, length: int) -> str:
    return f"hkdf {_hex(salt)} {_hex(ikm)} {_hex(info)} {length}"
