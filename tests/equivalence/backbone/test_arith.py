"""The kernels' requantization arithmetic equals gemmlowp/TFLM, written here literally.

kernels.c uses shorter but equivalent forms (one floor shift for the doubling high multiply,
a uint32 carry for rounding division); this proves the equivalence on extremes and on
hypothesis-drawn values, under ASan/UBSan.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model_gen.refgen import KERNELS_DIR, dsp_requant, quantize_multiplier
from tests.support.cbuild import build_c_program, run_c_program

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
DRIVER = KERNELS_DIR.parents[2] / "tests" / "equivalence" / "backbone" / "arith_driver.c"


def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, literally (C++ division truncates)."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    total = ab + nudge
    quotient = abs(total) // (1 << 31)
    return _wrap32(quotient if total >= 0 else -quotient)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(srdhm(x * (1 << left), multiplier), right)


def run_driver(triples: list[tuple[int, int, int]]) -> np.ndarray:
    exe = build_c_program(
        "br_arith",
        [DRIVER, KERNELS_DIR / "src" / "kernels.c"],
        include_dirs=[KERNELS_DIR / "include"],
    )
    raw = run_c_program(exe, stdin=np.array(triples, "<i4").tobytes())
    return np.frombuffer(raw, "<i4").reshape(-1, 3)


def expected(triples: list[tuple[int, int, int]]) -> np.ndarray:
    return np.array(
        [
            (
                srdhm(x, m),
                rounding_divide_by_pot(x, s & 31),
                multiply_by_quantized_multiplier(x, m, s),
            )
            for x, m, s in triples
        ],
        dtype=np.int64,
    )


def test_extremes() -> None:
    values = [INT32_MIN, INT32_MIN + 1, -(2**30), -3, -2, -1, 0, 1, 2, 3, 2**30, INT32_MAX]
    triples = [(x, m, s) for x in values for m in values for s in (-31, -17, -1, 0)]
    triples += [(x, 1 << 30, s) for x in range(-300, 300) for s in (1, 2, 3)]  # small left shifts
    np.testing.assert_array_equal(run_driver(triples), expected(triples))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(INT32_MIN, INT32_MAX),
            st.integers(INT32_MIN, INT32_MAX),
            st.integers(-31, 0),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_random_triples(triples: list[tuple[int, int, int]]) -> None:
    np.testing.assert_array_equal(run_driver(triples), expected(triples))


@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_reconstructs_the_scale(real: float) -> None:
    multiplier, shift = quantize_multiplier(real)
    if multiplier:
        assert 2**30 <= multiplier < 2**31
        assert abs(multiplier * 2.0 ** (shift - 31) - real) <= real * 2**-30
    else:
        assert real < 2**-31


def smmulr_requant(acc: int, pre: int, multiplier: int, round_: int, post: int) -> int:
    """The DSP path's requantization (kernels.h, br_requant), literally: SMMULR on the
    pre-scaled accumulator, then (2v + round - [v < 0]) >> post, all in int32."""
    scaled = acc << pre
    assert INT32_MIN <= scaled <= INT32_MAX
    v = (scaled * multiplier + (1 << 31)) >> 32
    total = 2 * v + round_ + (-1 if v < 0 else 0)
    assert INT32_MIN <= total <= INT32_MAX
    return total >> post


@settings(max_examples=300, deadline=None)
@given(
    bound=st.integers(1, 2**24),
    real=st.floats(min_value=1e-7, max_value=8.0, allow_nan=False, allow_infinity=False),
    offset=st.integers(-128, 127),
    fraction=st.floats(min_value=-1.0, max_value=1.0, allow_nan=False),
)
def test_dsp_requant_equals_multiply_by_quantized_multiplier(
    bound: int, real: float, offset: int, fraction: float
) -> None:
    """Where refgen.dsp_requant accepts a channel, its SMMULR form gives TFLM's result plus the
    output offset for every accumulator within the bound (the bound itself included)."""
    multiplier, shift = quantize_multiplier(real)
    rows = dsp_requant(
        np.array([bound]), np.array([multiplier]), np.array([shift]), offset, np.array([127])
    )
    if rows is None:
        return  # the layer keeps the portable kernel
    (pre, mult, round_, post) = rows[0]
    for acc in {bound, -bound, int(bound * fraction), 0, 1, -1}:
        want = multiply_by_quantized_multiplier(acc, multiplier, shift) + offset
        assert smmulr_requant(acc, pre, mult, round_, post) == want, (acc, multiplier, shift)
