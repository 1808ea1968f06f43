"""Every update is checked before use; a rejected one is recorded with its reason, never used."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tools.fedref.privacy import dequantize, rounded_norm_bound
from tools.link.messages import UpdateReady

# Probability that a Gaussian noise vector's norm exceeds σ(√P + t) is below exp(-t²/2).
_NOISE_TAIL_T = 8.0


@dataclass(frozen=True)
class Expected:
    """What an update of this round must look like."""

    round: int
    head_version: int
    n_params: int
    clip: float
    scale: float
    bits: int
    noise_std: float  # σ the device was asked to add (Δ units)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str  # "" when accepted
    norm: float
    delta: np.ndarray | None  # float64 Δ when accepted


def norm_bound(expected: Expected) -> float:
    """The norm bound the device enforces on the rounded update (conditional rounding, at most
    C plus one step per value), plus the noise tail when noised."""
    p = expected.n_params
    rounded = expected.scale * rounded_norm_bound(expected.clip, expected.scale, p)
    noise = expected.noise_std * (math.sqrt(p) + _NOISE_TAIL_T) if expected.noise_std else 0.0
    return rounded + noise


def validate(
    ready: UpdateReady, data: bytes, expected: Expected, accepted_devices: set[int], device_id: int
) -> Verdict:
    """Check one update; the first failing rule gives the reason."""
    reason = _header_problem(ready, data, expected)
    if not reason and device_id in accepted_devices:
        reason = "duplicate: this device already has an accepted update in this round"
    if reason:
        return Verdict(False, reason, math.nan, None)
    q = np.frombuffer(data, dtype={8: "<i1", 16: "<i2", 32: "<i4"}[ready.bits])
    delta = dequantize(q, ready.scale).astype(np.float64)
    if not np.all(np.isfinite(delta)):
        return Verdict(False, "nonfinite: Δ has NaN or Inf", math.nan, None)
    norm = float(np.linalg.norm(delta))
    bound = norm_bound(expected)
    if not norm <= bound:
        return Verdict(False, f"norm: ‖Δ‖ = {norm:.4g} > bound {bound:.4g}", norm, None)
    return Verdict(True, "", norm, delta)


def _header_problem(ready: UpdateReady, data: bytes, expected: Expected) -> str:
    if ready.round != expected.round:
        return f"stale_round: update of round {ready.round}, expected {expected.round}"
    if ready.head_version != expected.head_version:
        return (
            f"stale_head: trained from head {ready.head_version}, expected {expected.head_version}"
        )
    if ready.n_params != expected.n_params or ready.total_len != len(data):
        return f"shape: {ready.n_params} params / {len(data)} B, expected {expected.n_params}"
    if ready.bits != expected.bits or len(data) != ready.n_params * ready.bits // 8:
        return f"shape: {ready.bits}-bit values, expected {expected.bits}"
    if not math.isfinite(ready.scale) or not ready.scale > 0:
        return f"nonfinite: scale {ready.scale}"
    if not math.isclose(ready.scale, expected.scale, rel_tol=1e-6):
        return f"bad_param: scale {ready.scale}, expected {expected.scale}"
    return ""
