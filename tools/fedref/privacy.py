"""Twin of fedcore/privacy.c: L2 clip, stochastic rounding, discrete Gaussian noise on the
integer grid, saturation. Same random draws in the same order as the C code (fedcore/privacy.h).

Samplers: Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy" (2020),
Algorithms 1-3. Also the exact pmf of the discrete Gaussian, for tests and accounting.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from tools.fedref.rng import Rng

F32 = np.float32
FLAG_CLIPPED = 0x01
FLAG_SATURATED = 0x02
MAX_SIGMA_INT = 1048576.0
_Q_CLAMP = 2**40
NOISE_TAILS = 5.0  # device-noise standard deviations the quantization grid leaves room for
MAX_LEVELS = 32767  # finest grid: C/32767, inside the production policy (scale >= 2^-16 C)
COARSEST_REL = 2.0**-4  # coarsest grid C/16: the production policy's scale_max_rel
ROUND_TAIL = 1.0  # FC_ROUND_TAIL: sqrt(2 ln(1/beta)) for beta = exp(-1/2)
ROUND_BETA = math.exp(-(ROUND_TAIL**2) / 2)  # each attempt fails with probability <= beta
ROUND_MAX_ATTEMPTS = 32  # FC_ROUND_MAX_ATTEMPTS: then the noised zero vector is released
_ROUND_EXACT_NORM2 = 2.0**53
CLIP_FLOAT_SLACK = 2.0**-22  # fc_privatize's float clip may exceed C by this relative amount


@dataclass(frozen=True)
class PrivacyParams:
    """The privatization fields of TRAIN (docs/PROTOCOL.md section 2.4)."""

    clip: float
    noise_std: float
    scale: float
    bits: int

    def check(self) -> None:
        """Same acceptance rule as fc_privacy_params_check; raises ValueError."""
        clip, std, scale = F32(self.clip), F32(self.noise_std), F32(self.scale)
        if not (math.isfinite(clip) and math.isfinite(std) and math.isfinite(scale)):
            raise ValueError("non-finite privacy parameter")
        if clip < 0 or std < 0 or not scale > 0 or self.bits not in (8, 16, 32):
            raise ValueError(f"privacy parameter out of range: {self}")
        if float(std) / float(scale) > MAX_SIGMA_INT:
            raise ValueError("noise_std / scale exceeds the sampler's range")

    @property
    def sigma_int(self) -> float:
        """Noise standard deviation in grid units, computed as the C code does (double)."""
        return float(F32(self.noise_std)) / float(F32(self.scale))


def quantization_scale(clip: float, noise_std: float, bits: int, summands: int = 1) -> float:
    """The grid step s of UPDATE values (docs/PRIVACY.md, "Choosing the scale").

    A clipped Δ has no coordinate above C (|x_i| <= ||x|| <= C), so C + 5σ, mapped to
    L = floor((2^(bits-1) - 1) / summands) steps, keeps each value within ±L except when the
    device's own noise exceeds 5σ (probability 5.7e-7 per coordinate). With `summands` = n
    the sum of n such values stays within ±(2^(bits-1) - 1): a secure-aggregation modulus
    of 2^bits then recovers the sum exactly. L is capped at 32767 (the 16-bit grid): a finer
    grid buys nothing and would leave the production policy's range (scale >= 2^-16 C) and
    the sampler's (noise_std / scale <= 2^20); 32-bit words then only rule out saturation.
    The noise headroom is also capped at a step of C/16, the coarsest the production policy
    accepts (scale <= 2^-4 C; only C/L itself stays coarser, with L < 16 when many summands
    share 8 bits): on 8 bits that happens for σ > 0.22 C (n = 1), and then the grid
    leaves (2^(bits-1) - 1 - 16) / 16 · C/σ noise standard deviations instead of 5 (3.5 at
    σ = 2C, 1.7 at 4C); values beyond saturate (post-processing: ε unchanged, the average
    shrinks; use 16 bits at such σ). The result is rounded to float32 (its wire form).
    """
    if bits not in (8, 16, 32) or summands < 1 or not clip > 0 or noise_std < 0:
        raise ValueError("need bits in 8/16/32, summands >= 1, clip > 0, noise_std >= 0")
    levels = min(((1 << (bits - 1)) - 1) // summands, MAX_LEVELS)
    if levels < 1:
        raise ValueError(f"{summands} summands do not fit in {bits}-bit values")
    step = min((clip + NOISE_TAILS * noise_std) / levels, clip * COARSEST_REL)
    return float(F32(max(step, clip / levels)))  # the cap never pushes C itself off the grid


def l2_norm(x: np.ndarray) -> float:
    """Double accumulation in index order (np.cumsum is sequential); squares are exact."""
    squares = np.asarray(x, dtype=F32).astype(np.float64) ** 2
    return math.sqrt(float(np.cumsum(squares)[-1])) if len(squares) else 0.0


def clip_factor(x: np.ndarray, clip: float) -> F32 | None:
    """The float32 factor fc_clip_l2 multiplies by, or None when x is within the bound."""
    norm = l2_norm(x)
    clip = float(F32(clip))
    return F32(clip / norm) if clip > 0 and norm > clip else None


def clip_l2(x: np.ndarray, clip: float) -> tuple[np.ndarray, bool]:
    x = np.asarray(x, dtype=F32)
    factor = clip_factor(x, clip)
    return (x, False) if factor is None else (x * factor, True)


def stochastic_round(rng: Rng, x: F32, scale: F32) -> int:
    y = F32(x) / F32(scale)
    fl = np.floor(y)
    return int(fl) + int(rng.bernoulli(float(y) - float(fl)))


def bernoulli_exp_rational(rng: Rng, num: int, den: int) -> bool:
    """Exact Bernoulli(exp(-num/den)), 0 <= num <= den (fc_bernoulli_exp_rational)."""
    k = 1
    while k < 0xFFFFFFFF:
        accept = rng.below(den) < num
        if accept:
            accept = rng.below(k) == 0
        if not accept:
            break
        k += 1
    return bool(k & 1)


def bernoulli_exp(rng: Rng, gamma: float) -> bool:
    """Bernoulli(exp(-gamma)), gamma >= 0 (fc_bernoulli_exp)."""
    whole = math.floor(gamma)
    for _ in range(whole):
        if not bernoulli_exp_rational(rng, 1, 1):
            return False
    frac = gamma - whole
    k = 1
    while k < 0xFFFFFFFF and rng.bernoulli(frac / k):
        k += 1
    return bool(k & 1)


def discrete_laplace(rng: Rng, t: int) -> int:
    while True:
        u = rng.below(t)
        if not bernoulli_exp_rational(rng, u, t):
            continue
        v = 0
        while bernoulli_exp_rational(rng, 1, 1):
            v += 1
        negative = rng.u32() & 1
        if negative and u == 0 and v == 0:
            continue
        z = u + t * v
        return -z if negative else z


def discrete_gaussian(rng: Rng, sigma: float) -> int:
    if not sigma > 0:
        return 0
    sigma = min(sigma, MAX_SIGMA_INT)
    t = math.floor(sigma) + 1
    sigma2 = sigma * sigma
    while True:
        y = discrete_laplace(rng, t)
        dev = abs(float(y)) - sigma2 / t
        if bernoulli_exp(rng, dev * dev / (2.0 * sigma2)):
            return y


def rounding_norm2_bound(clip: float, scale: float, n_params: int) -> float:
    """fc_rounding_norm2_bound: the integer T the rounded vector's squared norm must not exceed
    (grid units), inf without a clip. c = C (1 + 2^-22) / s;
    T = floor(min((c + √P)², c² + P/4 + tail·(c + √P/2))): the first always holds, the second
    is Kairouz-Liu-Steinke's conditional bound (2021, Prop. 22). Same double operations as C."""
    clip, scale = float(F32(clip)), float(F32(scale))
    if not clip > 0 or not scale > 0:
        return math.inf
    c = clip * (1.0 + CLIP_FLOAT_SLACK) / scale
    root_n = math.sqrt(n_params)
    plain = (c + root_n) * (c + root_n)
    conditional = c * c + n_params / 4.0 + ROUND_TAIL * (c + root_n / 2.0)
    bound = min(conditional, plain)
    return float(math.floor(bound)) if bound < _ROUND_EXACT_NORM2 else math.inf


def rounded_norm_bound(clip: float, scale: float, n_params: int) -> float:
    """fc_rounded_norm_bound: the L2 norm, in grid units, that every rounded vector the device
    releases stays within (before noise): √T rounded up, or c + √P when T is inf. The one on-grid
    sensitivity the device's ledger and the aggregator's accountant use."""
    bound2 = rounding_norm2_bound(clip, scale, n_params)
    if math.isinf(bound2):
        clip, scale = float(F32(clip)), float(F32(scale))
        if not scale > 0:
            return math.inf
        return clip * (1.0 + CLIP_FLOAT_SLACK) / scale + math.sqrt(n_params)
    return math.nextafter(math.sqrt(bound2), math.inf)  # never below the real √T


def _round_coordinate(rng: Rng, x: F32, scale: F32) -> tuple[int, bool]:
    """(q, clamped): one stochastic rounding, |y| >= 2^40 clamped (the u64 still drawn)."""
    with np.errstate(over="ignore"):  # float32 overflow to inf, as in C: then clamped
        y = x / scale
    if abs(y) >= _Q_CLAMP:
        rng.u64()
        return (_Q_CLAMP if y > 0 else -_Q_CLAMP), True
    return stochastic_round(rng, x, scale), False


def round_conditional(x: np.ndarray, scale: float, bound2: float, rng: Rng) -> tuple[int, Rng]:
    """fc_round_conditional on x (float32, already clipped): (accepted attempt, 1-based, or 0
    when every attempt failed; the generator state the accepted attempt started from)."""
    scale32 = F32(scale)
    accepted = copy.copy(rng)
    for attempt in range(1, ROUND_MAX_ATTEMPTS + 1):
        accepted = copy.copy(rng)
        norm2 = sum(_round_coordinate(rng, xi, scale32)[0] ** 2 for xi in x)
        if math.isinf(bound2) or norm2 <= bound2:
            return attempt, accepted
    return 0, accepted


def privatize(delta: np.ndarray, params: PrivacyParams, rng: Rng) -> tuple[np.ndarray, int]:
    """Twin of fc_privatize: (q as int32 array, flags). Raises ValueError on bad input."""
    params.check()
    x = np.asarray(delta, dtype=F32)
    if not np.all(np.isfinite(x)):
        raise ValueError("non-finite delta")
    factor = clip_factor(x, params.clip)
    if factor is not None:
        x = x * factor
    scale, sigma = F32(params.scale), params.sigma_int
    bound2 = rounding_norm2_bound(params.clip, params.scale, len(x))
    attempt, replay = round_conditional(x, params.scale, bound2, rng)
    hi = (1 << (params.bits - 1)) - 1
    lo = -hi - 1
    q_out = np.empty(len(x), dtype=np.int32)
    saturated = False
    for i, xi in enumerate(x):
        q = 0
        if attempt:
            q, clamped = _round_coordinate(replay, xi, scale)
            saturated |= clamped
        if sigma > 0:
            q += discrete_gaussian(rng, sigma)
        saturated |= not lo <= q <= hi
        q_out[i] = min(max(q, lo), hi)
    flags = (FLAG_CLIPPED if factor is not None else 0) | (FLAG_SATURATED if saturated else 0)
    return q_out, flags


def privatize_many(
    deltas: np.ndarray, params: PrivacyParams, rng: np.random.Generator
) -> np.ndarray:
    """Vectorized twin of `privatize` for the simulator, K×P → K×P int64: the same clip rule
    (`clip_factor` per row), the same conditional stochastic rounding (rows re-drawn until
    their squared norm is within `rounding_norm2_bound`, zero after ROUND_MAX_ATTEMPTS) and the
    same noise distribution (discrete Gaussian with σ_int, by inverse CDF of
    `discrete_gaussian_pmf`), saturated to the wire width. It is not the device's random
    stream, and a floating-point CDF is not fit to protect a real release: host-side
    simulation only."""
    params.check()
    x = np.stack([clip_l2(row, params.clip)[0] for row in np.asarray(deltas, dtype=F32)])
    y = x / F32(params.scale)
    floor = np.floor(y)
    frac = y - floor
    bound2 = rounding_norm2_bound(params.clip, params.scale, x.shape[1])
    q = np.zeros(y.shape, dtype=np.int64)
    pending = np.ones(len(y), dtype=bool)
    for _ in range(ROUND_MAX_ATTEMPTS):
        rows = np.flatnonzero(pending)
        if not len(rows):
            break
        draw = floor[rows].astype(np.int64) + (rng.random(y[rows].shape) < frac[rows])
        fits = (draw.astype(np.float64) ** 2).sum(axis=1) <= bound2
        q[rows[fits]] = draw[fits]
        pending[rows[fits]] = False
    if params.sigma_int > 0:
        support, pmf = discrete_gaussian_pmf(params.sigma_int)
        cdf = np.cumsum(pmf)
        picks = np.searchsorted(cdf, rng.random(q.shape) * cdf[-1], side="right")
        q += support[np.minimum(picks, len(support) - 1)]
    hi = (1 << (params.bits - 1)) - 1
    return np.clip(q, -hi - 1, hi)


def dequantize(q: np.ndarray, scale: float) -> np.ndarray:
    """The decode rule: value = q * scale (float32, as fc_dequantize)."""
    return np.asarray(q).astype(F32) * F32(scale)


def discrete_gaussian_pmf(sigma: float, radius: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact pmf of the discrete Gaussian on [-radius, radius] (normalized over that support;
    the default radius leaves out mass below 1e-30). Returns (support, probabilities)."""
    radius = radius if radius is not None else math.ceil(12 * sigma) + 2
    z = np.arange(-radius, radius + 1)
    weights = np.exp(-(z.astype(np.float64) ** 2) / (2 * sigma * sigma))
    return z, weights / weights.sum()
