"""Shamir sharing of 32-byte secrets over GF(2^31 - 1), exactly as fedcore/secagg.c does it.

A secret is cut into 11 chunks of 3 bytes (little-endian; the last has 2); each chunk is the
constant term of a polynomial of degree t - 1 whose other coefficients are drawn with
`Rng.below(p)` (fedcore's ChaCha20 DRBG), chunk after chunk. Share x (1..n) holds the 11
values, each as u32 little-endian (44 bytes).
"""

from __future__ import annotations

import struct

from tools.fedref.rng import Rng

PRIME = 2**31 - 1
CHUNKS = 11
SHARE_LEN = 4 * CHUNKS


class ShamirError(ValueError):
    """Shares that cannot come from one sharing (duplicate x, values out of the field...)."""


def _chunks(secret: bytes) -> list[int]:
    return [int.from_bytes(secret[3 * k : 3 * k + 3], "little") for k in range(CHUNKS)]


def split(secret: bytes, t: int, n: int, coeff_rng: Rng) -> list[bytes]:
    """Shares for x = 1..n (index i holds x = i + 1)."""
    if len(secret) != 32 or not 1 <= t <= n:
        raise ShamirError(f"need a 32-byte secret and 1 <= t <= n (t={t}, n={n})")
    values = [[0] * CHUNKS for _ in range(n)]
    for k, constant in enumerate(_chunks(secret)):
        coeff = [constant] + [coeff_rng.below(PRIME) for _ in range(t - 1)]
        for i in range(n):
            x, y = i + 1, 0
            for c in reversed(coeff):
                y = (y * x + c) % PRIME
            values[i][k] = y
    return [struct.pack(f"<{CHUNKS}I", *v) for v in values]


def combine(shares: dict[int, bytes]) -> bytes:
    """The secret from shares {x: share}; needs at least t of them (more do no harm)."""
    xs = list(shares)
    if not xs or len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ShamirError(f"bad share coordinates {xs}")
    lagrange = []
    for i, xi in enumerate(xs):
        num = den = 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        lagrange.append(num * pow(den, PRIME - 2, PRIME) % PRIME)
    ys = [struct.unpack(f"<{CHUNKS}I", shares[x]) for x in xs]
    if any(y >= PRIME for row in ys for y in row):
        raise ShamirError("share value outside the field")
    secret = bytearray()
    for k in range(CHUNKS):
        v = sum(lag * row[k] for lag, row in zip(lagrange, ys, strict=True)) % PRIME
        width = min(3, 32 - 3 * k)
        if v >> (8 * width):
            raise ShamirError("inconsistent shares (the combined chunk does not fit)")
        secret += v.to_bytes(width, "little")
    return bytes(secret)
