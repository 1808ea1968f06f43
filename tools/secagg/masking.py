"""Masks, seeds and packing of fedcore/secagg.c, on `cryptography` and tools/fedref.

PRG(seed) = the ChaCha20 (RFC 8439) keystream words of key = seed, counter 0, nonce 0 — the
stream of fedcore's DRBG (rng.h) seeded with `seed` — each word masked to `bits` bits.
Pairwise seeds and share keys are HKDF-SHA-256 over X25519 (tools/link/crypto.py).
"""

from __future__ import annotations

import math
import struct

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from tools.link import crypto

MASK_LABEL = b"fedhead secagg v1 mask"
SHARE_LABEL = b"fedhead secagg v1 share"


def min_bits(q_bits: int, n: int) -> int:
    """Modulus bits so that the sum of n signed q_bits-bit values never wraps:
    n · 2^(q_bits-1) <= 2^(b-1)  ⇔  b = q_bits + ceil(log2 n)."""
    return q_bits + max(0, math.ceil(math.log2(n))) if n > 1 else q_bits


def prg(seed: bytes, n: int, bits: int) -> np.ndarray:
    """n mask values (uint64 holding values < 2^bits)."""
    # cryptography's ChaCha20 nonce is 16 bytes: u32 block counter | 12-byte nonce (zero here).
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    words = np.frombuffer(stream.update(bytes(4 * n)), dtype="<u4").astype(np.uint64)
    return words & np.uint64((1 << bits) - 1)


def _derive(secret: bytes, peer_public: bytes, round_id: int, label: bytes, a: int, b: int):
    shared = crypto.x25519_shared(secret, peer_public)
    return crypto.hkdf_sha256(
        struct.pack("<I", round_id), shared, label + struct.pack("<II", a, b), 32
    )


def pair_seed(secret: bytes, peer_public: bytes, round_id: int, id_a: int, id_b: int) -> bytes:
    """s_uv: the same from either side (X25519 is symmetric, ids are ordered)."""
    lo, hi = sorted((id_a, id_b))
    return _derive(secret, peer_public, round_id, MASK_LABEL, lo, hi)


def share_key(secret: bytes, peer_public: bytes, round_id: int, sender: int, receiver: int):
    return _derive(secret, peer_public, round_id, SHARE_LABEL, sender, receiver)


def pack(values: np.ndarray, bits: int) -> bytes:
    """Little-endian bit stream of `bits`-bit values (fc_secagg_pack)."""
    acc, held, out = 0, 0, bytearray()
    for v in np.asarray(values, dtype=np.uint64).tolist():
        acc |= (v & ((1 << bits) - 1)) << held
        held += bits
        while held >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            held -= 8
    if held:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack(data: bytes, n: int, bits: int) -> np.ndarray:
    if len(data) != (n * bits + 7) // 8:
        raise ValueError(f"{len(data)} B do not hold {n} values of {bits} bits")
    big = int.from_bytes(data, "little")
    mask = (1 << bits) - 1
    return np.array([(big >> (bits * i)) & mask for i in range(n)], dtype=np.uint64)


def to_signed(values: np.ndarray, bits: int) -> np.ndarray:
    """Values mod 2^bits as signed integers in [-2^(bits-1), 2^(bits-1))."""
    v = np.asarray(values, dtype=np.int64)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
