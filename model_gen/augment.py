"""Augmentation for wrist IMU windows (N, 1, T, 6): accelerometer xyz then gyroscope xyz.

What changes between people wearing the same watch, simulated per window:
- orientation on the wrist: one random 3-D rotation applied to both sensors' vectors;
- the other wrist: a mirror image. In the watch data the left wrist's x axis points the other
  way (the mean accelerometer x of every exercise flips sign between wrists), so mirroring is
  the reflection x -> -x: accelerometer (-ax, ay, az); the gyroscope measures a pseudovector,
  which picks up the determinant -1: (wx, -wy, -wz);
- strength and range of motion: amplitude scaling per channel;
- tempo: a time warp (a random speed around 1, resampled by linear interpolation);
- sensor noise: additive jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACCEL, GYRO = slice(0, 3), slice(3, 6)
MIRROR_ACCEL = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
MIRROR_GYRO = np.array([1.0, -1.0, -1.0], dtype=np.float32)


@dataclass(frozen=True)
class ImuAugment:
    max_rotation_deg: float = 30.0
    mirror_probability: float = 0.5
    gain_range: tuple[float, float] = (0.8, 1.2)
    max_speed_change: float = 0.15  # time warp: speed in [1 - m, 1 + m]
    jitter: float = 0.05  # noise std, in units of the data's overall std


def random_rotations(n: int, max_deg: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations about uniformly random axes by angles uniform in ±max_deg."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg, size=n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)  # skew-symmetric cross-product matrix of each axis
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3)[None] + s * k + (1 - c) * (k @ k)  # Rodrigues' formula


def time_warp(x: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Resample each window (N, 1, T, C) at `speed` times the original rate about its centre;
    samples past either end repeat the edge value."""
    n, _, t, _ = x.shape
    centre = (t - 1) / 2
    src = centre + (np.arange(t)[None, :] - centre) * speed[:, None]  # (n, t)
    src = np.clip(src, 0, t - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    frac = (src - lo)[:, None, :, None].astype(np.float32)
    rows = np.arange(n)[:, None]
    return (
        x[rows, :, lo].transpose(0, 2, 1, 3) * (1 - frac)
        + x[rows, :, hi].transpose(0, 2, 1, 3) * frac
    )


def augment_imu(x: np.ndarray, rng: np.random.Generator, aug: ImuAugment, std: float) -> np.ndarray:
    """A new random variant of every window of x (N, 1, T, 6), float32."""
    n = len(x)
    rot = random_rotations(n, aug.max_rotation_deg, rng).astype(np.float32)
    out = np.empty_like(x)
    out[..., ACCEL] = np.einsum("nij,nhtj->nhti", rot, x[..., ACCEL])
    out[..., GYRO] = np.einsum("nij,nhtj->nhti", rot, x[..., GYRO])
    mirror = rng.random(n) < aug.mirror_probability
    out[mirror, ..., ACCEL] *= MIRROR_ACCEL
    out[mirror, ..., GYRO] *= MIRROR_GYRO
    speed = rng.uniform(1 - aug.max_speed_change, 1 + aug.max_speed_change, size=n)
    out = time_warp(out, speed)
    gain = rng.uniform(*aug.gain_range, size=(n, 1, 1, x.shape[-1])).astype(np.float32)
    noise = rng.normal(0, aug.jitter * std, size=x.shape).astype(np.float32)
    return (out * gain + noise).astype(np.float32)
