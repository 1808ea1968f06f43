"""fedcore/platform/crypto.h (Monocypher + libsodium) and tools/link/crypto.py (cryptography):
RFC 7748, RFC 8439 and RFC 5869 vectors on both sides, then random inputs byte for byte."""

from __future__ import annotations

import random

import pytest

from tests.unit.crypto import cdriver
from tools.link import crypto

# RFC 7748 §5.2 (first vector) and §6.1 (Alice/Bob Diffie-Hellman).
RFC7748_SCALAR = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
RFC7748_U = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
RFC7748_OUT = bytes.fromhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
ALICE_SK = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PK = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_SK = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PK = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# RFC 8439 §2.8.2 AEAD vector.
AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = bytes.fromhex("070000004041424344454647")
AEAD_AD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
AEAD_PLAIN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
AEAD_CIPHER = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69"
    "da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad67594"
    "5585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
)
AEAD_TAG = bytes.fromhex("1ae10b594f09e26a7e902ecbd0600691")

# RFC 5869 test cases 1 and 3 (SHA-256; case 3 has empty salt and info).
HKDF_CASES = [
    (
        bytes(range(13)),
        b"\x0b" * 22,
        bytes(range(0xF0, 0xFA)),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        b"",
        b"\x0b" * 22,
        b"",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


def test_x25519_rfc7748_vectors_in_c_and_python():
    assert cdriver.x25519_shared(RFC7748_SCALAR, RFC7748_U) == RFC7748_OUT
    assert crypto.x25519_shared(RFC7748_SCALAR, RFC7748_U) == RFC7748_OUT
    assert cdriver.x25519_public(ALICE_SK) == ALICE_PK == crypto.x25519_public(ALICE_SK)
    assert cdriver.x25519_public(BOB_SK) == BOB_PK == crypto.x25519_public(BOB_SK)
    assert cdriver.x25519_shared(ALICE_SK, BOB_PK) == SHARED
    assert cdriver.x25519_shared(BOB_SK, ALICE_PK) == SHARED
    assert crypto.x25519_shared(BOB_SK, ALICE_PK) == SHARED


def test_x25519_low_order_point_is_refused_on_both_sides():
    # u = 0 and u = 1 are low-order points: every secret maps them to the all-zero secret.
    for low_order in (bytes(32), (1).to_bytes(32, "little")):
        assert cdriver.x25519_shared(ALICE_SK, low_order) is None
        with pytest.raises(crypto.CryptoError):
            crypto.x25519_shared(ALICE_SK, low_order)


def test_aead_rfc8439_vector_in_c_and_python():
    cipher, tag = crypto.aead_seal(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_PLAIN)
    assert (cipher, tag) == (AEAD_CIPHER, AEAD_TAG)
    sealed, opened = cdriver.run_batch(
        [
            cdriver.seal_cmd(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_PLAIN),
            cdriver.open_cmd(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CIPHER + AEAD_TAG),
        ]
    )
    assert sealed == AEAD_CIPHER + AEAD_TAG
    assert opened == AEAD_PLAIN


def test_aead_open_refuses_any_flipped_bit_and_writes_nothing():
    sealed = AEAD_CIPHER + AEAD_TAG
    commands = []
    for position in (0, len(AEAD_CIPHER) // 2, len(AEAD_CIPHER), len(sealed) - 1):
        forged = bytearray(sealed)
        forged[position] ^= 0x01
        commands.append(cdriver.open_cmd(AEAD_KEY, AEAD_NONCE, AEAD_AD, bytes(forged)))
    commands.append(cdriver.open_cmd(AEAD_KEY, AEAD_NONCE, AEAD_AD[:-1] + b"\x00", sealed))
    commands.append(cdriver.open_cmd(AEAD_KEY, bytes(12), AEAD_AD, sealed))
    # The driver itself fails if a refused open wrote into the plain-text buffer.
    assert cdriver.run_batch(commands) == [None] * len(commands)
    with pytest.raises(crypto.CryptoError):
        crypto.aead_open(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CIPHER[:-1] + b"\x00", AEAD_TAG)


@pytest.mark.parametrize(("salt", "ikm", "info", "okm"), HKDF_CASES)
def test_hkdf_rfc5869_vectors_in_c_and_python(salt, ikm, info, okm):
    expected = bytes.fromhex(okm)
    assert crypto.hkdf_sha256(salt, ikm, info, len(expected)) == expected
    assert cdriver.run_batch([cdriver.hkdf_cmd(salt, ikm, info, len(expected))]) == [expected]


def test_hkdf_refuses_lengths_out_of_range_in_c():
    assert cdriver.run_batch([cdriver.hkdf_cmd(b"s", b"k", b"i", 255 * 32 + 1)]) == [None]


def test_random_inputs_agree_byte_for_byte():
    rnd = random.Random(13)
    commands: list[str] = []
    expected: list[bytes] = []
    for _ in range(40):
        sk_a, sk_b = rnd.randbytes(32), rnd.randbytes(32)
        pk_b = crypto.x25519_public(sk_b)
        commands += [f"pub {sk_a.hex()}", f"shared {sk_a.hex()} {pk_b.hex()}"]
        expected += [crypto.x25519_public(sk_a), crypto.x25519_shared(sk_a, pk_b)]
        key, nonce = rnd.randbytes(32), rnd.randbytes(12)
        ad, plain = rnd.randbytes(rnd.randrange(0, 40)), rnd.randbytes(rnd.randrange(0, 700))
        cipher, tag = crypto.aead_seal(key, nonce, ad, plain)
        commands += [cdriver.seal_cmd(key, nonce, ad, plain)]
        commands += [cdriver.open_cmd(key, nonce, ad, cipher + tag)]
        expected += [cipher + tag, plain]
        salt, ikm, info = rnd.randbytes(rnd.randrange(0, 64)), rnd.randbytes(32), rnd.randbytes(20)
        length = rnd.randrange(1, 200)
        commands.append(cdriver.hkdf_cmd(salt, ikm, info, length))
        expected.append(crypto.hkdf_sha256(salt, ikm, info, length))
    assert cdriver.run_batch(commands) == expected
