"""Wrist IMU augmentation: rotations are rotations, mirroring is the wrist swap seen in the
data, time warping at speed 1 is the identity, and the result keeps shape and dtype."""

from __future__ import annotations

import numpy as np

from model_gen.augment import (
    MIRROR_ACCEL,
    MIRROR_GYRO,
    ImuAugment,
    augment_imu,
    random_rotations,
    time_warp,
)


def test_random_rotations_are_proper_rotations_within_the_angle():
    rot = random_rotations(500, 30.0, np.random.default_rng(0))
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rot), 1.0)
    angle = np.degrees(np.arccos(np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angle.max() <= 30.0 + 1e-9 and angle.max() > 25.0


def test_mirroring_is_a_reflection_with_the_gyroscope_as_a_pseudovector():
    reflection = np.diag(MIRROR_ACCEL)
    assert np.linalg.det(reflection) == -1
    # angular velocity transforms as det(M) * M * w
    assert np.array_equal(np.diag(MIRROR_GYRO), -reflection)


def test_time_warp_at_speed_one_is_the_identity_and_slower_stretches():
    x = np.arange(2 * 100 * 6, dtype=np.float32).reshape(2, 1, 100, 6)
    assert np.allclose(time_warp(x, np.ones(2)), x)
    ramp = np.tile(np.arange(100, dtype=np.float32)[None, None, :, None], (1, 1, 1, 6))
    slow = time_warp(ramp, np.array([0.5]))
    assert np.allclose(np.diff(slow[0, 0, :, 0]), 0.5)  # half speed: half the slope


def test_augment_keeps_shape_dtype_and_magnitude():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 1, 100, 6)).astype(np.float32)
    plain = ImuAugment(
        max_rotation_deg=0, mirror_probability=0, gain_range=(1, 1), max_speed_change=0, jitter=0
    )
    assert np.allclose(augment_imu(x, rng, plain, 1.0), x, atol=1e-6)
    out = augment_imu(x, rng, ImuAugment(), 1.0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0.7 < np.linalg.norm(out[..., :3]) / np.linalg.norm(x[..., :3]) < 1.3
