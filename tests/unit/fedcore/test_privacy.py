"""fedcore privatization: clip, stochastic rounding, discrete Gaussian noise — C against the
Python twin and against the exact distributions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.fedcore import cdriver
from tools.fedref import privacy
from tools.fedref.privacy import PrivacyParams
from tools.fedref.rng import Rng

FC_ERR_PARAM, FC_ERR_NONFINITE = -1, -2
N_DRAWS = 100_000


def random_delta(n: int, seed: int, scale: float = 0.05) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


@pytest.mark.parametrize("bound", [0.1, 0.5, 10.0])
def test_clip_identical_in_c_and_python(bound):
    x = random_delta(650, 1)  # norm about 1.33
    c_clipped, c_out = cdriver.clip(x, bound)
    py_out, py_clipped = privacy.clip_l2(x, bound)
    assert c_clipped == py_clipped == (privacy.l2_norm(x) > bound)
    assert np.array_equal(c_out.view(np.uint32), py_out.view(np.uint32))
    assert privacy.l2_norm(py_out) <= bound * (1 + 1e-6)


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_quantized_ints_identical_without_noise(bits, clip):
    delta = random_delta(650, bits)
    params = PrivacyParams(clip=clip, noise_std=0.0, scale=0.001, bits=bits)
    status, flags, q = cdriver.privatize(delta, params, seed=7)
    py_q, py_flags = privacy.privatize(delta, params, Rng.from_u64(7))
    assert status == 0
    assert np.array_equal(q, py_q)
    assert flags == py_flags
    assert bool(flags & privacy.FLAG_CLIPPED) == (clip > 0)
    # 8 bits at this scale cannot hold the unclipped |delta| (up to ~0.2 = 200 steps).
    saturates = bits == 8 and clip == 0
    assert bool(flags & privacy.FLAG_SATURATED) == saturates
    if not saturates:
        clipped, _ = privacy.clip_l2(delta, clip)
        assert np.max(np.abs(privacy.dequantize(q, params.scale) - clipped)) <= params.scale


def test_quantized_ints_identical_with_noise():
    delta = random_delta(455, 3)
    params = PrivacyParams(clip=0.5, noise_std=0.01, scale=0.002, bits=16)
    status, flags, q = cdriver.privatize(delta, params, seed=99)
    py_q, py_flags = privacy.privatize(delta, params, Rng.from_u64(99))
    assert status == 0 and flags == py_flags
    assert np.array_equal(q, py_q)
    # noise of sigma 5 grid steps on top of the rounded clipped delta
    rounded = np.round(privacy.clip_l2(delta, 0.5)[0] / 0.002)
    assert 4.0 < np.std(q - rounded) < 6.0


def test_huge_values_saturate_and_keep_the_stream_aligned():
    delta = np.array([3e38, -3e38, 0.25, 1e-3], dtype=np.float32)
    params = PrivacyParams(clip=0.0, noise_std=0.0, scale=1e-6, bits=32)
    status, flags, q = cdriver.privatize(delta, params, seed=1)
    py_q, py_flags = privacy.privatize(delta, params, Rng.from_u64(1))
    assert status == 0 and np.array_equal(q, py_q) and flags == py_flags
    assert flags & privacy.FLAG_SATURATED
    assert q[0] == 2**31 - 1 and q[1] == -(2**31)


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("scale", 0.0, FC_ERR_PARAM),
        ("scale", float("nan"), FC_ERR_NONFINITE),
        ("clip", -1.0, FC_ERR_PARAM),
        ("noise_std", float("inf"), FC_ERR_NONFINITE),
        ("noise_std", -0.1, FC_ERR_PARAM),
        ("bits", 12, FC_ERR_PARAM),
        ("noise_std", 1e7, FC_ERR_PARAM),  # sigma_int 1e7 / 1 beyond FC_MAX_SIGMA_INT
    ],
)
def test_bad_params_refused_and_output_untouched(field, value, status):
    fields = {"clip": 1.0, "noise_std": 0.0, "scale": 1.0, "bits": 16, field: value}
    params = PrivacyParams(**fields)
    got_status, _, q = cdriver.privatize(random_delta(20, 0), params, seed=1)
    assert got_status == status
    assert np.all(q == 0x5A5A5A5A)
    with pytest.raises(ValueError):
        privacy.privatize(random_delta(20, 0), params, Rng.from_u64(1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_delta_refused(bad):
    delta = random_delta(20, 0)
    delta[7] = bad
    status, _, q = cdriver.privatize(delta, PrivacyParams(1.0, 0.0, 0.01, 16), seed=1)
    assert status == FC_ERR_NONFINITE and np.all(q == 0x5A5A5A5A)
    with pytest.raises(ValueError):
        privacy.privatize(delta, PrivacyParams(1.0, 0.0, 0.01, 16), Rng.from_u64(1))


@pytest.mark.parametrize(("x", "scale"), [(0.37, 0.1), (-0.0123, 0.01), (2.5e-3, 1e-3)])
def test_stochastic_rounding_unbiased(x, scale):
    x32, s32 = np.float32(x), np.float32(scale)
    # Rounding is unbiased for y = x / scale as float32 computes it (one deterministic rounding
    # of the division, relative error <= 2^-24, documented in docs/PRIVACY.md).
    exact = float(x32 / s32)
    assert exact != np.floor(exact)
    c_q = cdriver.stochastic_rounds(21, x32, s32, N_DRAWS).astype(np.float64)
    rng = Rng.from_u64(21)
    py_q = np.array([privacy.stochastic_round(rng, x32, s32) for _ in range(N_DRAWS)], float)
    assert np.array_equal(c_q, py_q)
    assert set(np.unique(c_q)) <= {np.floor(exact), np.floor(exact) + 1}
    err = c_q - exact
    standard_error = err.std(ddof=1) / np.sqrt(N_DRAWS)
    assert abs(err.mean()) < 3 * standard_error


def pmf_moments(sigma: float) -> tuple[np.ndarray, np.ndarray, float]:
    support, pmf = privacy.discrete_gaussian_pmf(sigma)
    return support, pmf, float(np.sqrt(np.sum(pmf * support.astype(float) ** 2)))


@pytest.mark.parametrize("sigma", [0.7, 3.0, 40.5])
def test_discrete_gaussian_c_std_within_2_percent(sigma):
    samples = cdriver.discrete_gaussian(5, sigma, N_DRAWS).astype(np.float64)
    _, _, exact_std = pmf_moments(sigma)
    assert abs(samples.std() / exact_std - 1) < 0.02
    assert abs(samples.mean()) < 4 * exact_std / np.sqrt(N_DRAWS)


def test_discrete_gaussian_python_twin_same_stream_and_std():
    sigma = 3.0
    rng = Rng.from_u64(5)
    py = np.array([privacy.discrete_gaussian(rng, sigma) for _ in range(N_DRAWS)], np.int64)
    assert np.array_equal(py, cdriver.discrete_gaussian(5, sigma, N_DRAWS))
    _, _, exact_std = pmf_moments(sigma)
    assert abs(py.std() / exact_std - 1) < 0.02


@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_discrete_gaussian_matches_exact_pmf(sigma):
    samples = cdriver.discrete_gaussian(8, sigma, N_DRAWS)
    support, pmf, _ = pmf_moments(sigma)
    counts = np.array([np.sum(samples == z) for z in support])
    expected = pmf * N_DRAWS
    big = expected > 20
    # every well-populated bin within 4.5 binomial standard deviations
    sd = np.sqrt(expected * (1 - pmf))
    assert np.all(np.abs(counts - expected)[big] < 4.5 * sd[big])
    # tail mass beyond 2 sigma against the exact pmf
    tail_p = float(pmf[np.abs(support) > 2 * sigma].sum())
    tail = np.mean(np.abs(samples) > 2 * sigma)
    assert abs(tail - tail_p) < 4 * np.sqrt(tail_p * (1 - tail_p) / N_DRAWS)
    # variance against the exact pmf (not sigma^2, which differs for small sigma)
    exact_var = float(np.sum(pmf * support.astype(float) ** 2))
    assert abs(samples.var() / exact_var - 1) < 0.03
    assert samples.min() >= support.min() and samples.max() <= support.max()


def test_bernoulli_exp_rational_exact_probability():
    rng = Rng.from_u64(12)
    draws = [privacy.bernoulli_exp_rational(rng, 2, 3) for _ in range(40000)]
    p = np.exp(-2 / 3)
    assert abs(np.mean(draws) - p) < 4 * np.sqrt(p * (1 - p) / len(draws))


def test_zero_sigma_draws_nothing():
    rng = Rng.from_u64(2)
    assert privacy.discrete_gaussian(rng, 0.0) == 0
    assert rng.u32() == Rng.from_u64(2).u32()


def test_quantization_scale_rule_leaves_room_for_clip_and_noise():
    assert privacy.quantization_scale(0.5, 0.0, 8) == pytest.approx(0.5 / 127, rel=1e-7)
    assert privacy.quantization_scale(0.5, 0.1, 8) == pytest.approx(1.0 / 127, rel=1e-7)
    assert privacy.quantization_scale(1.0, 0.0, 8, summands=10) == pytest.approx(1.0 / 12, rel=1e-7)
    with pytest.raises(ValueError):
        privacy.quantization_scale(1.0, 0.0, 8, summands=200)  # fewer than one level each
    with pytest.raises(ValueError):
        privacy.quantization_scale(1.0, 0.0, 12)


@pytest.mark.parametrize("noise_std", [0.0, 0.05])
def test_rule_scale_sums_exactly_modulo_2_to_the_bits(noise_std):
    """A cohort whose updates put all their norm on one coordinate (the worst case) never
    saturates, and their sum is recovered exactly from the values summed mod 2^8 (SecAgg)."""
    clip, bits, cohort = 0.5, 8, 8
    scale = privacy.quantization_scale(clip, noise_std, bits, summands=cohort)
    spike = np.zeros(455, np.float32)
    spike[3] = 1.0  # clipped to norm 0.5: one coordinate at C
    params = PrivacyParams(clip=clip, noise_std=noise_std, scale=scale, bits=bits)
    qs = []
    for device in range(cohort):
        sign = 1 if device % 4 else -1
        q, flags = privacy.privatize(
            sign * spike + random_delta(455, device, 0.01), params, Rng.from_u64(device)
        )
        assert not flags & privacy.FLAG_SATURATED
        qs.append(q.astype(np.int64))
    true_sum = np.sum(qs, axis=0)
    wrapped = np.sum([q % 256 for q in qs], axis=0) % 256
    recovered = np.where(wrapped >= 128, wrapped - 256, wrapped)
    assert np.array_equal(recovered, true_sum)
    assert np.abs(true_sum).max() <= 127


@pytest.mark.parametrize("z", [1.0, 1.5, 2.0, 4.0])  # z >= z_min = 1
def test_8_bit_rule_stays_inside_the_production_policy(z):
    """The default 8-bit grid is one a production board accepts at every z (the noise headroom
    gives way at the policy's coarsest step C/16, the clip never does)."""
    from tools.fedref.policy import Policy

    assert Policy.production().scale_max_rel == privacy.COARSEST_REL
    clip = 4.0
    scale = privacy.quantization_scale(clip, z * clip, 8)
    assert Policy.production().check(clip, z * clip, scale, 8, 1, 256) is None
    assert scale == pytest.approx(min((1 + 5 * z) * clip / 127, clip / 16), rel=1e-7)


def test_32_bit_words_use_the_16_bit_grid_inside_the_samplers_range():
    fine = privacy.quantization_scale(1.0, 2.0, 32)
    assert fine == privacy.quantization_scale(1.0, 2.0, 16)
    PrivacyParams(clip=1.0, noise_std=2.0, scale=fine, bits=32).check()  # sigma/scale <= 2^20
    assert fine >= 2.0**-16  # the production policy's smallest scale, relative to C
