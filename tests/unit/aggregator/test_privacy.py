"""Accounting equals dp-accounting computed directly; budget refusal; central noise std."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest

from tools.aggregator import privacy
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.strategy import combine


def _direct_epsilon(q: float, z: float, rounds: int, delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    accountant.compose(event, rounds)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize(
    ("cohort", "population", "z", "rounds"),
    [(8, 8, 1.0, 10), (10, 100, 1.1, 50), (32, 1000, 0.8, 200)],
)
def test_central_epsilon_equals_dp_accounting(
    cohort: int, population: int, z: float, rounds: int
) -> None:
    config = AggregatorConfig(privacy=PrivacyMode.CENTRAL, noise_multiplier=z, delta=1e-5)
    event = privacy.round_event(config, population, cohort, cohort)
    assert event == privacy.RoundEvent(cohort / population, z)
    ours = privacy.epsilon([event] * rounds, 1e-5)
    direct = _direct_epsilon(cohort / population, z, rounds, 1e-5)
    assert ours == pytest.approx(direct, rel=1e-12)
    assert 0 < ours < math.inf


def test_distributed_dropouts_account_with_the_noise_that_arrived() -> None:
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, noise_multiplier=1.0)
    event = privacy.round_event(config, 20, 8, 6)
    assert event.noise_multiplier == pytest.approx(math.sqrt(6 / 8))
    assert privacy.device_noise_std(config, 8) == pytest.approx(1.0 / math.sqrt(8))
    mixed = [privacy.RoundEvent(0.4, 1.0)] * 3 + [event]
    accountant = dp_accounting.rdp.RdpAccountant()
    for e in mixed:
        accountant.compose(
            dp_accounting.PoissonSampledDpEvent(
                e.sampling_q, dp_accounting.GaussianDpEvent(e.noise_multiplier)
            )
        )
    assert privacy.epsilon(mixed, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-12)


def test_local_mode_is_unamplified_per_update_gaussian() -> None:
    config = AggregatorConfig(privacy=PrivacyMode.LOCAL, noise_multiplier=2.0)
    event = privacy.round_event(config, 100, 10, 10)
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(2.0), 5)
    assert privacy.epsilon([event] * 5, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5))
    assert privacy.device_noise_std(config, 10) == pytest.approx(2.0 * config.clip)


def test_budget_refuses_the_round_that_would_exceed_it() -> None:
    config = AggregatorConfig(privacy=PrivacyMode.CENTRAL, noise_multiplier=1.0, epsilon_budget=3.0)
    event = privacy.RoundEvent(1.0, 1.0)
    events: list[privacy.RoundEvent] = []
    while True:
        try:
            privacy.check_budget(config, events, event)
        except privacy.BudgetExceededError as exc:
            assert "budget 3" in str(exc)
            break
        events.append(event)
    assert privacy.epsilon(events, config.delta) <= 3.0
    assert privacy.epsilon([*events, event], config.delta) > 3.0


def test_none_mode_spends_nothing() -> None:
    assert privacy.round_event(AggregatorConfig(), 10, 10, 10) is None


def test_central_noise_std_matches_z_times_c() -> None:
    z, clip, n, size = 1.3, 0.5, 4, 200_000
    config = AggregatorConfig(privacy=PrivacyMode.CENTRAL, noise_multiplier=z, clip=clip)
    zeros = np.zeros((n, size))
    mean = combine(zeros, np.ones(n), config, privacy.central_noise(config, size))
    expected = z * clip / n
    # std estimate of 200k normal samples has relative sd ≈ 1/√(2·200k) ≈ 0.16 %; allow 1 %.
    assert mean.std() == pytest.approx(expected, rel=0.01)
    assert abs(mean.mean()) < 5 * expected / math.sqrt(size)
    again = combine(zeros, np.ones(n), config, privacy.central_noise(config, size))
    assert not np.array_equal(mean, again)  # fresh OS entropy each round
    assert not privacy.central_noise(AggregatorConfig(), 10).any()


def test_config_refuses_unsound_combinations() -> None:
    with pytest.raises(ValueError, match="weighted"):
        AggregatorConfig(privacy=PrivacyMode.CENTRAL, weighted=True).check()
    with pytest.raises(ValueError, match="not a sum"):
        AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, strategy="median").check()


def test_accounting_charges_the_rounding_growth_of_the_quantized_update():
    config = AggregatorConfig(privacy=PrivacyMode.CENTRAL, noise_multiplier=1.0, clip=0.5, bits=8)
    plain = privacy.round_event(config, 100, 10, 10)
    quantized = privacy.round_event(config, 100, 10, 10, n_params=343)
    growth = config.quant_scale * math.sqrt(343)  # C + s·√P bounds the decoded update
    assert quantized.noise_multiplier == pytest.approx(1.0 * 0.5 / (0.5 + growth))
    assert privacy.epsilon([quantized], 1e-5) > privacy.epsilon([plain], 1e-5)
