"""Twin of fedcore/rng.c: the ChaCha20 keystream DRBG (RFC 8439 block function).

Key = 32-byte seed (little-endian words), 64-bit block counter in state words 12-13, nonce words
14-15 zero; outputs are keystream words in order. Blocks are computed with numpy many at a time,
which changes nothing in the stream and makes long draws (1e5 noise samples) fast enough.
"""

from __future__ import annotations

import numpy as np

_CONSTANTS = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], dtype=np.uint32)
_BLOCKS_PER_REFILL = 64
_TWO_POW_64 = 18446744073709551616.0


def _rotl(x: np.ndarray, n: int) -> np.ndarray:
    return (x << np.uint32(n)) | (x >> np.uint32(32 - n))


def _quarter(x: list[np.ndarray], a: int, b: int, c: int, d: int) -> None:
    x[a] = x[a] + x[b]
    x[d] = _rotl(x[d] ^ x[a], 16)
    x[c] = x[c] + x[d]
    x[b] = _rotl(x[b] ^ x[c], 12)
    x[a] = x[a] + x[b]
    x[d] = _rotl(x[d] ^ x[a], 8)
    x[c] = x[c] + x[d]
    x[b] = _rotl(x[b] ^ x[c], 7)


def chacha20_blocks(state: np.ndarray) -> np.ndarray:
    """RFC 8439 block function on a (16, n) uint32 array of input states; returns (16, n)."""
    x = [state[i].copy() for i in range(16)]
    for _ in range(10):
        _quarter(x, 0, 4, 8, 12)
        _quarter(x, 1, 5, 9, 13)
        _quarter(x, 2, 6, 10, 14)
        _quarter(x, 3, 7, 11, 15)
        _quarter(x, 0, 5, 10, 15)
        _quarter(x, 1, 6, 11, 12)
        _quarter(x, 2, 7, 8, 13)
        _quarter(x, 3, 4, 9, 14)
    return np.stack(x) + state


def chacha20_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    """Twin of fc_chacha20_block: 64 keystream bytes for (key, 32-bit counter, 96-bit nonce)."""
    state = np.zeros((16, 1), dtype=np.uint32)
    state[0:4, 0] = _CONSTANTS
    state[4:12, 0] = np.frombuffer(key, dtype="<u4")
    state[12, 0] = counter
    state[13:16, 0] = np.frombuffer(nonce, dtype="<u4")
    return chacha20_blocks(state)[:, 0].astype("<u4").tobytes()


class Rng:
    """Same stream as fc_rng_t; method names follow the C functions."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("seed must be 32 bytes")
        self._key = np.frombuffer(seed, dtype="<u4").astype(np.uint32)
        self._counter = 0
        self._words: list[int] = []
        self._pos = 0

    @classmethod
    def from_u64(cls, seed: int) -> Rng:
        """Twin of fc_rng_seed_u64 (test builds: 8 little-endian bytes then 24 zeros)."""
        return cls(int(seed).to_bytes(8, "little") + bytes(24))

    def _refill(self) -> None:
        n = _BLOCKS_PER_REFILL
        counters = np.arange(self._counter, self._counter + n, dtype=np.uint64)
        state = np.zeros((16, n), dtype=np.uint32)
        state[0:4] = _CONSTANTS[:, None]
        state[4:12] = self._key[:, None]
        state[12] = (counters & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        state[13] = (counters >> np.uint64(32)).astype(np.uint32)
        # Column-major flatten: block 0's 16 words, then block 1's, ...
        self._words = chacha20_blocks(state).T.reshape(-1).tolist()
        self._pos = 0
        self._counter += n

    def u32(self) -> int:
        if self._pos >= len(self._words):
            self._refill()
        word = self._words[self._pos]
        self._pos += 1
        return word

    def u64(self) -> int:
        low = self.u32()
        return low | (self.u32() << 32)

    def uniform01(self) -> float:
        """Twin of fc_rng_uniform01: resolution 2^-24."""
        return (self.u32() >> 8) * 2.0**-24

    def below(self, n: int) -> int:
        """Twin of fc_rng_below (Lemire's multiply-and-reject, unbiased)."""
        if n == 0:
            return 0
        m = self.u32() * n
        low = m & 0xFFFFFFFF
        if low < n:
            threshold = ((1 << 32) - n) % n
            while low < threshold:
                m = self.u32() * n
                low = m & 0xFFFFFFFF
        return m >> 32

    def bernoulli(self, p: float) -> bool:
        """Twin of fc_rng_bernoulli: one u64 always drawn; u64 < floor(p * 2^64)."""
        u = self.u64()
        if not p > 0.0:
            return False
        if p >= 1.0:
            return True
        return u < int(p * _TWO_POW_64)
