"""Twin of fedcore/privacy.c: L2 clip, stochastic rounding, discrete Gaussian noise on the
integer grid, saturation. Same random draws in the same order as the C code (fedcore/privacy.h).

Samplers: Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy" (2020),
Algorithms 1-3. Also the exact pmf of the discrete Gaussian, for tests and accounting.
"""

from __future__ import annotations

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
    The result is rounded to float32 (its wire form).
    """
    if bits not in (8, 16, 32) or summands < 1 or not clip > 0 or noise_std < 0:
        raise ValueError("need bits in 8/16/32, summands >= 1, clip > 0, noise_std >= 0")
    levels = min(((1 << (bits - 1)) - 1) // summands, MAX_LEVELS)
    if levels < 1:
        raise ValueError(f"{summands} summands do not fit in {bits}-bit values")
    return float(F32((clip + NOISE_TAILS * noise_std) / levels))


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
    hi = (1 << (params.bits - 1)) - 1
    lo = -hi - 1
    q_out = np.empty(len(x), dtype=np.int32)
    saturated = False
    for i, xi in enumerate(x):
        with np.errstate(over="ignore"):  # float32 overflow to inf, as in C: then clamped
            y = xi / scale
        if abs(y) >= _Q_CLAMP:
            rng.u64()  # the rounding draw, kept so the stream stays aligned with C
            q = _Q_CLAMP if y > 0 else -_Q_CLAMP
            saturated = True
        else:
            q = stochastic_round(rng, xi, scale)
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
    (`clip_factor` per row), the same unbiased stochastic rounding and the same noise
    distribution (discrete Gaussian with σ_int, by inverse CDF of `discrete_gaussian_pmf`),
    saturated to the wire width. It is not the device's random stream, and a floating-point
    CDF is not fit to protect a real release: host-side simulation only."""
    params.check()
    x = np.stack([clip_l2(row, params.clip)[0] for row in np.asarray(deltas, dtype=F32)])
    y = x / F32(params.scale)
    floor = np.floor(y)
    q = floor.astype(np.int64) + (rng.random(y.shape) < (y - floor))
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
