"""Hostile updates are rejected with reasons; honest ones pass, rounding tolerance included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.aggregator.core import Aggregator
from tools.aggregator.validation import Expected, norm_bound
from tools.fedref.privacy import rounded_norm_bound
from tools.link.client import FetchedUpdate
from tools.link.frame import crc32
from tools.link.messages import UpdateReady

SCALE = float(np.float32(1 / 4096))
EXPECTED = Expected(
    round=4, head_version=3, n_params=455, clip=1.0, scale=SCALE, bits=16, noise_std=0.0
)


def _update(
    q: np.ndarray,
    device: int = 1,
    round_id: int = 4,
    head: int = 3,
    scale: float = SCALE,
    n_params: int | None = None,
) -> FetchedUpdate:
    data = q.astype("<i2").tobytes()
    n = len(q) if n_params is None else n_params
    ready = UpdateReady(round_id, head, n, 16, 0, scale, 1.0, 0.0, len(data), crc32(data), 0.0)
    return FetchedUpdate(ready, data, device)


def _honest(norm: float = 1.0, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=455)
    return np.round(v / np.linalg.norm(v) * norm / SCALE).astype(np.int64)


def _check(update: FetchedUpdate, accepted: set[int] | None = None) -> str:
    row, _ = Aggregator.check_update(update, EXPECTED, accepted if accepted is not None else set())
    return "" if row.accepted else row.reason


def test_honest_update_at_the_clip_bound_is_accepted() -> None:
    row, delta = Aggregator.check_update(_update(_honest(1.0)), EXPECTED, set())
    assert row.accepted and row.reason == "" and row.q is not None
    assert delta is not None and np.linalg.norm(delta) == pytest.approx(
        1.0, abs=SCALE * math.sqrt(455)
    )
    # the device's conditional-rounding bound, below the plain C + s·√P
    assert norm_bound(EXPECTED) == SCALE * rounded_norm_bound(1.0, SCALE, 455)
    assert norm_bound(EXPECTED) <= 1.0 + SCALE * math.sqrt(455)


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (_update(_honest(1.2)), "norm"),  # huge norm: beyond C plus rounding tolerance
        (_update(np.full(455, 32767)), "norm"),
        (_update(_honest(), scale=float("nan")), "nonfinite"),
        (_update(_honest(), scale=float("inf")), "nonfinite"),
        (_update(_honest()[:-7]), "shape"),  # wrong shape: a D×C' update
        (_update(_honest(), n_params=400), "shape"),
        (_update(_honest(), round_id=3), "stale_round"),
        (_update(_honest(), head=2), "stale_head"),
        (_update(_honest(), scale=SCALE * 2), "bad_param"),
    ],
)
def test_hostile_update_rejected_with_reason(update: FetchedUpdate, reason: str) -> None:
    row, delta = Aggregator.check_update(update, EXPECTED, set())
    assert not row.accepted and delta is None and row.q is None
    assert row.reason.startswith(reason)


def test_replayed_update_is_rejected_as_duplicate() -> None:
    accepted: set[int] = set()
    update = _update(_honest())
    row, _ = Aggregator.check_update(update, EXPECTED, accepted)
    assert row.accepted
    accepted.add(row.device_id)
    assert _check(update, accepted).startswith("duplicate")
    assert _check(_update(_honest(), device=2), accepted) == ""


def test_late_update_is_recorded_not_used() -> None:
    row, delta = Aggregator.check_update(_update(_honest()), EXPECTED, set(), late=True)
    assert not row.accepted and row.reason.startswith("late") and delta is None


def test_noise_widens_the_bound_only_as_much_as_the_noise() -> None:
    noisy = Expected(**{**EXPECTED.__dict__, "noise_std": 0.05})
    rng = np.random.default_rng(1)
    q = np.round((_honest() * SCALE + rng.normal(0, 0.05, 455)) / SCALE).astype(np.int64)
    assert Aggregator.check_update(_update(q), noisy, set())[0].accepted
    assert not Aggregator.check_update(_update(q), EXPECTED, set())[0].accepted
