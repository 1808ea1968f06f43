"""fedcore/secagg.c's arithmetic against its Python twin tools/secagg: Shamir sharing over
GF(2^31 - 1) share for share, reconstruction from any t, mask expansion, packing, the
modulus rule."""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from tests.support.cbuild import REPO, build_c_program, run_c_program
from tests.support.third_party import CRYPTO_PORT_SOURCES, crypto_include_dirs
from tools.fedref.rng import Rng
from tools.secagg import masking, shamir

FEDCORE = REPO / "firmware" / "lib" / "fedcore"
DRIVER = Path(__file__).with_name("secagg_driver.c")


@cache
def driver() -> Path:
    sources = [
        DRIVER,
        *(FEDCORE / "src" / f"{n}.c" for n in ("secagg", "rng", "link", "cobs", "crc32")),
    ]
    stub = Path(__file__).with_name("device_id_stub.c")
    return build_c_program(
        "secagg_driver",
        [*sources, stub, *CRYPTO_PORT_SOURCES],
        include_dirs=[FEDCORE / "include", REPO / "tests" / "support", *crypto_include_dirs()],
    )


def run(commands: list[str]) -> list[str]:
    out = run_c_program(driver(), stdin=("\n".join(commands) + "\n").encode())
    return out.decode().splitlines()


def test_shamir_shares_match_the_twin_and_any_t_rebuild_the_secret():
    rnd = random.Random(5)
    for t, n in [(2, 2), (3, 5), (6, 10), (9, 16)]:
        secret, seed = rnd.randbytes(32), rnd.randbytes(32)
        py_shares = shamir.split(secret, t, n, Rng(seed))
        [c_hex] = run([f"split {secret.hex()} {t} {n} {seed.hex()}"])
        assert bytes.fromhex(c_hex) == b"".join(py_shares)
        for _ in range(3):
            xs = rnd.sample(range(1, n + 1), t)
            chosen = {x: py_shares[x - 1] for x in xs}
            assert shamir.combine(chosen) == secret
            line = f"combine {','.join(map(str, xs))} {b''.join(chosen.values()).hex()}"
            assert run([line]) == [secret.hex()]


def _combine_or_none(shares: dict[int, bytes]) -> bytes | None:
    try:
        return shamir.combine(shares)
    except shamir.ShamirError:
        return None  # a wrong combination may fall outside the secret's chunk widths


def test_fewer_than_t_shares_do_not_rebuild_and_bad_shares_are_refused():
    secret, seed = bytes(range(32)), bytes(32)
    shares = shamir.split(secret, 4, 6, Rng(seed))
    three = {x: shares[x - 1] for x in (1, 2, 3)}
    assert _combine_or_none(three) != secret
    out = run([f"combine 1,2,3 {b''.join(three.values()).hex()}"])
    assert out != [secret.hex()]
    with pytest.raises(shamir.ShamirError):
        shamir.combine({1: shares[0], 2: b"\xff" * 44})  # values outside the field
    assert run([f"combine 1,1 {(shares[0] + shares[1]).hex()}"]) == ["ERR"]


def test_mask_expansion_and_packing_match_the_twin():
    rnd = np.random.default_rng(2)
    for bits in (11, 12, 16, 32):
        seed = rnd.bytes(32)
        values = rnd.integers(0, 1 << bits, 455, dtype=np.uint64)
        as_hex = values.astype("<u4").tobytes().hex()
        plus, minus = run(
            [f"mask {seed.hex()} {bits} 1 {as_hex}", f"mask {seed.hex()} {bits} -1 {as_hex}"]
        )
        m = masking.prg(seed, 455, bits)
        modulus = np.uint64(1 << bits) if bits < 64 else None
        expect_plus = (values + m) % modulus
        expect_minus = (values - m) % modulus
        assert (
            np.frombuffer(bytes.fromhex(plus), "<u4").astype(np.uint64).tolist()
            == expect_plus.tolist()
        )
        assert (
            np.frombuffer(bytes.fromhex(minus), "<u4").astype(np.uint64).tolist()
            == expect_minus.tolist()
        )
        [packed] = run([f"pack {bits} {as_hex}"])
        assert bytes.fromhex(packed) == masking.pack(values, bits)
        assert masking.unpack(bytes.fromhex(packed), 455, bits).tolist() == values.tolist()


def test_prg_is_fedcore_drbg_stream():
    seed = bytes(range(32))
    rng = Rng(seed)
    assert masking.prg(seed, 40, 32).tolist() == [rng.u32() for _ in range(40)]


@pytest.mark.parametrize(
    ("q_bits", "n", "bits"), [(8, 1, 8), (8, 2, 9), (8, 10, 12), (16, 16, 20), (8, 100, 15)]
)
def test_modulus_rule_is_the_same_and_sums_never_wrap(q_bits, n, bits):
    assert masking.min_bits(q_bits, n) == bits
    assert run([f"minbits {q_bits} {n}"]) == [str(bits)]
    # The extreme sums fit: n · (-2^(q-1)) and n · (2^(q-1) - 1) decode back exactly.
    for extreme in (-(1 << (q_bits - 1)), (1 << (q_bits - 1)) - 1):
        wrapped = np.array([(n * extreme) % (1 << bits)], dtype=np.uint64)
        assert masking.to_signed(wrapped, bits)[0] == n * extreme
