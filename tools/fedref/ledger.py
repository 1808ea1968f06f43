"""Twin of fedcore/ledger.{h,c}: what a device's released updates cost, by its own noise.

One release is the multivariate discrete Gaussian the device adds on the quantization grid.
Its zero-concentrated DP (rho) uses the sensitivity the device can verify alone, in grid units:
replace-one against any observer of the update: every rounded vector the device releases has
L2 norm within `privacy.rounded_norm_bound` (conditional rounding, with the clip's float
slack), so two differ by at most twice it; no sampling amplification.
RDP(a) = a * rho; releases add their rho; (epsilon, delta) is dp-accounting's conversion
(`compute_epsilon`) over ORDERS. docs/PRIVACY.md states the guarantee and its assumptions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tools.fedref.privacy import rounded_norm_bound

F32 = np.float32

# The C grid (FC_LEDGER_ORDERS); the tests pass the same to RdpAccountant(orders=...).
ORDERS: tuple[float, ...] = (
    1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0,
    10.0, 12.0, 14.0, 16.0, 20.0, 24.0, 28.0, 32.0, 48.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
)  # fmt: skip


def sensitivity_grid(clip: float, scale: float, n_params: int) -> float:
    """L2 sensitivity in grid units the device can verify: twice the norm bound every rounded
    vector it releases keeps (`privacy.rounded_norm_bound`, conditional rounding)."""
    return 2.0 * rounded_norm_bound(clip, scale, n_params)


def discreteness_slack(sigma: float, n_params: int) -> float:
    """P * tau, tau = 10 sum_{k=1}^{P-1} exp(-2 pi^2 sigma^2 k / (k + 1)) (Kairouz et al. 2021)."""
    a = 2.0 * math.pi * math.pi * sigma * sigma
    tau = 0.0
    for k in range(1, n_params):
        term = math.exp(-a * k / (k + 1))
        if term == 0.0:
            break
        tau += term
    return n_params * 10.0 * tau


def release_rho(clip: float, noise_std: float, scale: float, n_params: int) -> float:
    """fc_ledger_release_rho: zCDP of one release; inf without a clip or without noise."""
    sigma = float(F32(noise_std)) / float(F32(scale))
    if not float(F32(clip)) > 0 or not sigma > 0:
        return math.inf
    sens = sensitivity_grid(clip, scale, n_params)
    return sens * sens / (2.0 * sigma * sigma) + discreteness_slack(sigma, n_params)


def epsilon(rho: float, delta: float) -> float:
    """fc_ledger_epsilon: dp-accounting's compute_epsilon of RDP a * rho over ORDERS."""
    if math.isinf(rho):
        return math.inf
    best = math.inf
    for a in ORDERS:
        r = a * rho
        if r < 0 or delta * delta + math.expm1(-r) > 0:
            eps = 0.0
        elif a > 1.01:
            eps = r + math.log1p(-1 / a) - math.log(delta * a) / (a - 1)
        else:
            eps = math.inf
        best = min(best, eps)
    return max(0.0, best)


@dataclass
class Ledger:
    """fc_ledger_t."""

    releases: int = 0
    last_round: int = 0
    rho: float = 0.0

    def add(self, round_id: int, rho: float) -> None:
        self.releases += 1
        self.last_round = round_id
        self.rho += rho

    def epsilon(self, delta: float) -> float:
        return epsilon(self.rho, delta)
