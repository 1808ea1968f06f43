"""Aggregation rules on small known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tools.aggregator.config import AggregatorConfig, Strategy
from tools.aggregator.strategy import ServerOptimizer, combine

DELTAS = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, -100.0]])
ZERO = np.zeros(2)


def test_fedavg_mean_and_fixed_denominator() -> None:
    assert combine(DELTAS, AggregatorConfig(), ZERO) == pytest.approx([26.5, -10.0])
    fixed = combine(DELTAS, AggregatorConfig(), ZERO, denominator=8.0)
    assert fixed == pytest.approx(DELTAS.sum(0) / 8)  # DP modes: expected cohort, not count


def test_median_and_trimmed_mean_ignore_the_outlier() -> None:
    median = combine(DELTAS, AggregatorConfig(strategy=Strategy.MEDIAN), ZERO)
    assert median == pytest.approx([2.5, 15.0])
    trimmed = combine(
        DELTAS, AggregatorConfig(strategy=Strategy.TRIMMED_MEAN, trim_fraction=0.25), ZERO
    )
    assert trimmed == pytest.approx([2.5, 15.0])


def test_noise_is_added_to_the_sum() -> None:
    noise = np.array([4.0, -4.0])
    assert combine(DELTAS, AggregatorConfig(), noise) == pytest.approx([27.5, -11.0])


def test_server_sgd_and_fedadam_state_round_trip() -> None:
    params, update = np.zeros(2), np.array([1.0, -2.0])
    assert ServerOptimizer(AggregatorConfig(server_lr=0.5), 2).step(
        params, update
    ) == pytest.approx([0.5, -1.0])
    config = AggregatorConfig(server_optimizer="adam", server_lr=0.1)
    adam = ServerOptimizer(config, 2)
    first = adam.step(params, update)
    m, v = 0.1 * update, 0.01 * update**2
    assert first == pytest.approx(0.1 * m / (np.sqrt(v) + 1e-3))
    restored = ServerOptimizer(config, 2, adam.state())
    assert restored.step(first, update) == pytest.approx(adam.step(first, update))
