"""fedcore ChaCha20 DRBG: RFC 8439 vectors, C and Python streams identical, unbiased bounds."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.fedcore import cdriver
from tools.fedref.rng import Rng, chacha20_block

# RFC 8439 section 2.3.2: key 00..1f, counter 1, nonce 000000090000004a00000000.
RFC_232_KEY = bytes(range(32))
RFC_232_NONCE = bytes.fromhex("000000090000004a00000000")
RFC_232_OUT = bytes.fromhex(
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
)
# RFC 8439 appendix A.1, test vector #1: all-zero key, counter 0, all-zero nonce.
RFC_A1_1_OUT = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)


def test_block_function_matches_rfc8439_in_c_and_python():
    assert chacha20_block(RFC_232_KEY, 1, RFC_232_NONCE) == RFC_232_OUT
    assert cdriver.chacha_block(RFC_232_KEY, 1, RFC_232_NONCE) == RFC_232_OUT
    assert chacha20_block(bytes(32), 0, bytes(12)) == RFC_A1_1_OUT
    assert cdriver.chacha_block(bytes(32), 0, bytes(12)) == RFC_A1_1_OUT


def test_drbg_stream_is_the_chacha20_keystream():
    # Seed 0 = all-zero key, counter 0, zero nonce: the first block is RFC 8439 A.1 #1.
    rng = Rng(bytes(32))
    first = np.array([rng.u32() for _ in range(16)], dtype="<u4").tobytes()
    assert first == RFC_A1_1_OUT
    assert cdriver.rng_words(0, 16).tobytes() == RFC_A1_1_OUT


@pytest.mark.parametrize("seed", [0, 1, 0xDEADBEEFCAFEF00D])
def test_c_and_python_streams_identical(seed):
    n = 3000  # crosses the Python twin's 1024-word refill boundary twice
    rng = Rng.from_u64(seed)
    expected = np.array([rng.u32() for _ in range(n)], dtype=np.uint32)
    assert np.array_equal(cdriver.rng_words(seed, n), expected)


def test_u64_is_low_word_first():
    a, b = Rng.from_u64(9), Rng.from_u64(9)
    low, high = a.u32(), a.u32()
    assert b.u64() == low | (high << 32)


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 1000, 2**31 + 1, 2**32 - 1])
def test_below_c_and_python_identical_and_in_range(bound):
    rng = Rng.from_u64(bound)
    expected = np.array([rng.below(bound) for _ in range(2000)], dtype=np.uint32)
    got = cdriver.below(bound, bound, 2000)
    assert np.array_equal(got, expected)
    assert got.max() < bound


def test_below_has_no_modulo_bias():
    # bound 3 * 2^30: a plain `u32 % bound` would give [0, 2^30) twice the probability of the rest.
    bound = 3 * 2**30
    values = cdriver.below(5, bound, 60000)
    low_third = np.mean(values < 2**30)
    se = np.sqrt((1 / 3) * (2 / 3) / len(values))
    assert abs(low_third - 1 / 3) < 4 * se


def test_below_is_uniform_over_small_range():
    values = cdriver.below(11, 7, 70000)
    counts = np.bincount(values, minlength=7)
    expected = len(values) / 7
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 22.5  # chi-square, 6 degrees of freedom, p = 0.001


def test_uniform01_resolution_and_range_in_c_and_python():
    rng = Rng.from_u64(3)
    values = np.array([rng.uniform01() for _ in range(5000)])
    assert np.array_equal(cdriver.uniform01(3, 5000).astype(np.float64), values)
    assert values.min() >= 0 and values.max() < 1
    assert np.all(values * 2**24 == np.floor(values * 2**24))  # multiples of 2^-24
    assert abs(values.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(values))


def test_bernoulli_threshold_is_exact_for_floats():
    # p = 0.75 -> threshold 3 * 2^62: the C rule (u64 < floor(p * 2^64)) in Python.
    rng = Rng.from_u64(4)
    draws = [rng.bernoulli(0.75) for _ in range(20000)]
    assert abs(np.mean(draws) - 0.75) < 4 * np.sqrt(0.75 * 0.25 / len(draws))
    assert not Rng.from_u64(1).bernoulli(0.0)
    assert Rng.from_u64(1).bernoulli(1.0)


def test_seed_must_be_32_bytes():
    with pytest.raises(ValueError):
        Rng(bytes(31))
