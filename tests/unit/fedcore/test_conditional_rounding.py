"""Conditional stochastic rounding (Kairouz, Liu, Steinke 2021, section 4) in fedcore/privacy.c
against its Python twin tools/fedref/privacy.py (same integers, same attempts, same stream
position), the norm bound it promises, and its acceptance probability against the exact one."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from tests.unit.fedcore import cdriver
from tools.fedref import privacy
from tools.fedref.privacy import PrivacyParams
from tools.fedref.rng import Rng

P = 455  # the 64×7 head
SCALE = 2.0**-5  # a power of two: y = x / s is exactly the designed grid value


def worst_case_x(n: int = P, seed: int = 0) -> np.ndarray:
    """Every coordinate halfway between two grid points (the largest rounding variance, so the
    lowest acceptance): |y| = 1.5 on 168 coordinates, 0.5 on the rest, random signs; ‖y‖ ≈ 21.2,
    the 8-bit grid of a z = 1 release (C/s = 127/6)."""
    gen = np.random.default_rng(seed)
    y = np.where(np.arange(n) < 168, 1.5, 0.5) * gen.choice([-1.0, 1.0], n)
    return gen.permutation(y).astype(np.float32) * np.float32(SCALE)


def clip_of(x: np.ndarray) -> float:
    """The smallest float32 clip at or above ‖x‖: the bound the rule gives, nothing clipped."""
    return float(np.nextafter(np.float32(privacy.l2_norm(x)), np.float32(np.inf)))


def exact_acceptance(x: np.ndarray, scale: float, bound2: float) -> float:
    """P(Σ q_i² <= bound2) for independent q_i = ⌊y_i⌋ + Bernoulli(frac_i), by convolution:
    q_i² = ⌊y_i⌋² + b_i (2⌊y_i⌋ + 1)."""
    y = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    floor = np.floor(y)
    frac = y - floor
    weights = (2 * floor + 1).astype(np.int64)
    low = int(weights[weights < 0].sum())
    pmf = np.zeros(int(np.abs(weights).sum()) + 1)
    pmf[-low] = 1.0  # index = partial sum - low
    for w, f in zip(weights, frac, strict=True):
        shifted = np.roll(pmf, w)  # the sum never leaves [low, high]: no wrap-around occurs
        pmf = pmf * (1 - f) + shifted * f
    sums = np.arange(len(pmf)) + low + float((floor**2).sum())
    return float(pmf[sums <= bound2].sum())


def _norm_bound_queries(seed: int, count: int) -> list[tuple[float, float, int]]:
    """(clip, scale, n) triples: edge cases (coarse grid, the 16-bit grid, a scale so fine
    that nothing is conditioned, no clip, one parameter) and `count` random float32 ones."""
    queries = [(4.0, 4.0 * 6 / 127, 343), (0.5, 0.5 / 4096, 455), (1.0, 1e-12, 455),
               (0.0, 0.01, 455), (2.5, 0.3, 1)]  # fmt: skip
    gen = np.random.default_rng(seed)
    return queries + [
        (float(np.float32(c)), float(np.float32(c / levels)), int(n))
        for c, levels, n in zip(
            gen.uniform(0.01, 10, count),
            gen.uniform(1, 70000, count),
            gen.integers(1, 700, count),
            strict=True,
        )
    ]


def _assert_twin_draws_the_same(
    x: np.ndarray, bound2: float, seed: int, attempts: np.ndarray, q: np.ndarray, next_word: int
) -> None:
    """The twin, seeded alike, accepts the same attempt of every run, replays it to the same
    integers and leaves its stream at the same next word as the C runs did."""
    rng = Rng.from_u64(seed)
    for run in range(len(attempts)):
        attempt, replay = privacy.round_conditional(x, SCALE, bound2, rng)
        assert attempt == attempts[run]
        expected = [privacy.stochastic_round(replay, xi, np.float32(SCALE)) for xi in x]
        assert np.array_equal(q[run], expected)
    assert rng.u32() == next_word


def test_norm_bounds_identical_in_c_and_python_and_below_the_plain_bound() -> None:
    queries = [*_norm_bound_queries(5, 200), (1.0, 1e-9, 70)]
    c_out = cdriver.norm_bounds(queries)
    py_out = np.array(
        [[privacy.rounding_norm2_bound(*q), privacy.rounded_norm_bound(*q)] for q in queries]
    )
    assert np.array_equal(c_out.view(np.uint64), py_out.view(np.uint64))  # bit for bit
    for (clip, scale, n), (bound2, bound) in zip(queries, py_out, strict=True):
        c = float(np.float32(clip)) * (1 + 2**-22) / float(np.float32(scale))
        assert bound <= (c + math.sqrt(n)) * (1 + 1e-15)  # not above the unconditional bound
        if math.isfinite(bound2):
            assert bound2 == math.floor(bound2)
            assert bound == math.nextafter(math.sqrt(bound2), math.inf)
            assert bound * bound >= bound2  # the root is rounded up, never down
            kls = c * c + n / 4 + privacy.ROUND_TAIL * (c + math.sqrt(n) / 2)  # Prop. 22
            assert bound2 <= kls and bound2 > min(kls, (c + math.sqrt(n)) ** 2) - 1
    assert math.isinf(privacy.rounding_norm2_bound(0.0, 0.01, 455))  # nothing to bound
    # the 8-bit grid of a z = 1 release: 12 % over C/s instead of 87 % (watch head)
    assert privacy.rounded_norm_bound(4.0, 4.0 * 6 / 127, 343) < 1.13 * 127 / 6


@pytest.mark.parametrize("tight", [False, True])
def test_attempts_and_integers_identical_in_c_and_python(tight: bool) -> None:
    """The rule's bound, and a bound at the mean of ‖q‖² (about half the attempts fail): same
    accepted attempt, same integers, same stream position after 150 runs."""
    x = worst_case_x()
    clip = clip_of(x)
    bound2 = privacy.rounding_norm2_bound(clip, SCALE, P)
    if tight:
        bound2 = float(math.floor(float((x.astype(np.float64) / SCALE) @ (x / SCALE)) + P / 4))
    attempts, q, next_word = cdriver.round_conditional(x, 1.0, SCALE, bound2, seed=11, runs=150)
    _assert_twin_draws_the_same(x, bound2, 11, attempts, q, next_word)
    assert attempts.min() >= 1 and attempts.max() > 1  # retries happened and were replayed
    assert (attempts.mean() > 1.5) == tight
    assert np.all((q.astype(np.float64) ** 2).sum(axis=1) <= bound2)  # the bound, every time


def test_all_attempts_failing_releases_zero_after_exactly_the_attempt_budget() -> None:
    """Unreachable with ‖x‖ <= C in practice (< β^32); forced here with a bound of 0: attempt
    0, and the stream has moved by exactly 32 attempts of P draws in both twins."""
    x = worst_case_x(40)
    attempts, q, next_word = cdriver.round_conditional(x, 1.0, SCALE, 0.0, seed=3, runs=1)
    assert attempts[0] == 0 and not q.any()
    rng = Rng.from_u64(3)
    assert privacy.round_conditional(x, SCALE, 0.0, rng)[0] == 0
    assert rng.u32() == next_word
    skipped = Rng.from_u64(3)
    for _ in range(privacy.ROUND_MAX_ATTEMPTS * 40):
        skipped.u64()
    assert skipped.u32() == next_word


def test_privatize_without_noise_keeps_the_norm_bound_for_every_seed() -> None:
    """fc_privatize (clip, conditional rounding, no noise) on the 8-bit rule's grid: ‖q‖² <= T
    for every seed, and C equals the twin."""
    delta = np.random.default_rng(2).standard_normal(P).astype(np.float32)
    params = PrivacyParams(clip=4.0, noise_std=0.0, scale=float(np.float32(24 / 127)), bits=8)
    bound2 = privacy.rounding_norm2_bound(params.clip, params.scale, P)
    for seed in range(40):
        status, flags, q = cdriver.privatize(delta, params, seed=seed)
        py_q, py_flags = privacy.privatize(delta, params, Rng.from_u64(seed))
        assert status == 0 and flags == py_flags == privacy.FLAG_CLIPPED
        assert np.array_equal(q, py_q)
        assert float((q.astype(np.float64) ** 2).sum()) <= bound2


def test_acceptance_rate_matches_the_exact_probability_and_beats_one_minus_beta() -> None:
    """4000 conditional roundings of the worst-case x with the rule's bound: accepted / attempts
    is within 4 standard errors of the exact acceptance probability (convolution), which is at
    least 1 - β (Kairouz-Liu-Steinke Prop. 22; β = e^-1/2, their recommendation)."""
    x = worst_case_x(seed=4)
    bound2 = privacy.rounding_norm2_bound(clip_of(x), SCALE, P)
    exact = exact_acceptance(x, SCALE, bound2)
    assert exact >= 1 - privacy.ROUND_BETA
    runs = 4000
    attempts, _, _ = cdriver.round_conditional(x, 1.0, SCALE, bound2, seed=8, runs=runs)
    assert attempts.min() >= 1
    rate = runs / attempts.sum()
    stderr = math.sqrt(exact**2 * (1 - exact) / runs)  # geometric number of attempts
    assert abs(rate - exact) < 4 * stderr, (rate, exact, stderr)


def test_acceptance_rate_at_a_tight_bound_matches_the_exact_probability() -> None:
    """Same check where about half the attempts fail, so a wrong acceptance rule would show."""
    x = worst_case_x(seed=6)
    y = x.astype(np.float64) / SCALE
    bound2 = float(math.floor(float(y @ y) + P / 4))
    exact = exact_acceptance(x, SCALE, bound2)
    assert 0.3 < exact < 0.7
    runs = 3000
    attempts, _, _ = cdriver.round_conditional(x, 1.0, SCALE, bound2, seed=9, runs=runs)
    rate = runs / attempts.sum()
    stderr = math.sqrt(exact**2 * (1 - exact) / runs)
    assert abs(rate - exact) < 4 * stderr, (rate, exact, stderr)


def test_vectorized_twin_keeps_the_same_bound() -> None:
    """privatize_many (the simulator's) conditions on the same bound."""
    x = np.tile(worst_case_x(seed=4), (2000, 1))
    clip = clip_of(x[0])
    params = PrivacyParams(clip=clip, noise_std=0.0, scale=SCALE, bits=16)
    q = privacy.privatize_many(x, params, np.random.default_rng(1))
    bound2 = privacy.rounding_norm2_bound(clip, SCALE, P)
    norms2 = (q.astype(np.float64) ** 2).sum(axis=1)
    assert np.all(norms2 <= bound2) and np.all(norms2 > 0)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_cortex_m4_build_gives_the_twins_bounds_attempts_and_integers() -> None:
    """fedcore's privacy.c built for Cortex-M4 (soft-float double, newlib's sqrt) and run under
    unicorn: T and B bit for bit, and the re-drawn roundings of a tight bound (about half the
    attempts fail) with the twin's attempts, integers and stream position."""
    from tools.bench import privacy as m4_privacy
    from tools.bench.m4 import M4Machine

    machine = M4Machine(m4_privacy.build_elf(), count_instructions=False)
    queries = _norm_bound_queries(12, 60)
    py_out = np.array(
        [[privacy.rounding_norm2_bound(*q), privacy.rounded_norm_bound(*q)] for q in queries]
    )
    m4_out = m4_privacy.norm_bounds(machine, queries)
    assert np.array_equal(m4_out.view(np.uint64), py_out.view(np.uint64))

    x = worst_case_x(seed=6)
    y = x.astype(np.float64) / SCALE
    bound2 = float(math.floor(float(y @ y) + P / 4))
    attempts, q, next_word, _ = m4_privacy.round_conditional(machine, x, SCALE, bound2, 21, 40)
    _assert_twin_draws_the_same(x, bound2, 21, attempts, q, next_word)
    assert attempts.max() > 1
