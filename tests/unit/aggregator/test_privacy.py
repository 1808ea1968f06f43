"""The accountant charges dp-accounting's figure for the event the code declares and runs:
sampling rate, neighbouring relation per mode, rounding in the sensitivity, user-level units,
distributed releases of K shares whoever arrives, the cohort cap's δ slack; empty rounds
charge nothing; central noise is the discrete Gaussian of std z·C."""

from __future__ import annotations

import math
from dataclasses import replace

import dp_accounting
import numpy as np
import pytest

from tools.aggregator import privacy, sampling
from tools.aggregator.config import AggregatorConfig, PrivacyMode, PrivacyUnit
from tools.fedref.privacy import quantization_scale, rounded_norm_bound

NR = dp_accounting.NeighboringRelation
EXACT = 1e-12  # a scale this small makes C' = C: the audit's figures, rounding left out


def _plan(q: float, devices: int, per_unit: int = 1, cap: int = 0) -> sampling.SamplingPlan:
    """A sampling plan over `devices` registered devices (units of `per_unit` devices)."""
    units = devices // per_unit
    return sampling.SamplingPlan(q, units, devices, per_unit, "", cap or devices)


def _direct(
    event: dp_accounting.DpEvent,
    rounds: int,
    relation: NR = NR.ADD_OR_REMOVE_ONE,
    delta: float = 1e-5,
) -> float:
    accountant = dp_accounting.rdp.RdpAccountant(neighboring_relation=relation)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return accountant.get_epsilon(delta)


def _gaussian_run(config: AggregatorConfig, event: privacy.RoundEvent, rounds: int) -> float:
    return privacy.ledger_epsilon(config, [event] * rounds)


@pytest.mark.parametrize(
    ("q", "z", "rounds", "n_params"),
    [(1.0, 1.0, 10, 15), (0.1, 1.1, 50, 343), (0.032, 0.8, 200, 455)],
)
def test_central_epsilon_is_dp_accounting_with_rounding_in_the_sensitivity(
    q: float, z: float, rounds: int, n_params: int
) -> None:
    config = AggregatorConfig(privacy=PrivacyMode.CENTRAL, noise_multiplier=z, clip=0.5)
    event = privacy.round_event(config, _plan(q, 100), 7, n_params)
    grid = float(np.float32(quantization_scale(0.5, 0.0, 8)))  # the rule, default 8 bits
    c_prime = grid * rounded_norm_bound(0.5, grid, n_params)  # the device's norm bound
    assert event == privacy.RoundEvent(q, z * 0.5 / c_prime)
    gaussian = dp_accounting.GaussianDpEvent(z * 0.5 / c_prime)
    declared = gaussian if q >= 1 else dp_accounting.PoissonSampledDpEvent(q, gaussian)
    assert _gaussian_run(config, event, rounds) == pytest.approx(
        _direct(declared, rounds), rel=1e-12
    )


def test_rounding_is_charged_12_304_with_conditional_rounding_not_12_37() -> None:
    # the audit's figure is for the grid C/4096 (the rule of docs/PRIVACY.md gives a finer one);
    # the plain bound C + s·√P charged 12.37, the device's conditional rounding about C + s/2
    config = AggregatorConfig(
        privacy=PrivacyMode.CENTRAL, noise_multiplier=1.0, clip=0.5, scale=0.5 / 4096
    )
    event = privacy.round_event(config, _plan(1.0, 6), 6, 343)
    charged = _gaussian_run(config, event, 5)
    assert charged == pytest.approx(12.304, abs=0.0005)
    exact = privacy.round_event(
        AggregatorConfig(privacy=PrivacyMode.CENTRAL, scale=EXACT), _plan(1.0, 6), 6, 343
    )
    assert _gaussian_run(config, exact, 5) == pytest.approx(12.30, abs=0.005)
    assert _gaussian_run(config, exact, 5) < charged


def test_distributed_release_carries_k_shares_whoever_arrives() -> None:
    """σ = z·C/√t per device, t = ⌊m/2⌋ + 1; the release always holds K shares (the
    aggregator tops up), so the event is the same for 6 arrivals or 1, and it is
    dp-accounting's Poisson-sampled Gaussian at z·√(K/t)."""
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, scale=EXACT)
    plan = _plan(0.4, 20, cap=16)  # m = 8: t = 5
    assert privacy.noise_shares(config, plan) == (16, 5)
    assert privacy.plan_noise_std(config, plan) == pytest.approx(1.0 / math.sqrt(5))
    full = privacy.round_event(config, plan, 6, 15)
    assert full == privacy.round_event(config, plan, 1, 15)
    assert full.noise_multiplier == pytest.approx(math.sqrt(16 / 5))
    declared = dp_accounting.PoissonSampledDpEvent(
        0.4, dp_accounting.GaussianDpEvent(full.noise_multiplier)
    )
    assert _gaussian_run(config, full, 5) == pytest.approx(_direct(declared, 5), rel=1e-12)
    # The audit's case (6 registered, q = 1, 1 of 6 reports in round 5) now costs what a
    # full round costs: K = 6 shares are released every time, t = 4.
    six = _plan(1.0, 6)
    assert privacy.noise_shares(config, six) == (6, 4)
    one = privacy.round_event(config, six, 1, 15)
    assert one == privacy.round_event(config, six, 6, 15)
    assert one.noise_multiplier == pytest.approx(math.sqrt(6 / 4))
    # An explicit --secagg-threshold is the calibration (capped at K).
    assert privacy.noise_shares(replace(config, secagg_threshold=3), six) == (6, 3)
    assert privacy.noise_shares(replace(config, secagg_threshold=9), six) == (6, 6)


def test_cohort_cap_truncation_is_added_to_delta() -> None:
    """A capped round differs from the uncapped mechanism with probability η: the run is
    (ε, δ' + (1 + e^ε)·Ση)-DP where ε is dp-accounting's at δ'."""
    event = privacy.RoundEvent(0.1, 1.2)
    capped = privacy.RoundEvent(0.1, 1.2, 1e-9)
    eps = privacy.epsilon([capped] * 50, 1e-5)
    slack = (1 + math.exp(eps)) * 50e-9
    ideal = privacy.epsilon([event] * 50, 1e-5 - slack)
    assert eps >= ideal and eps == pytest.approx(ideal, rel=1e-3)
    assert eps > privacy.epsilon([event] * 50, 1e-5)
    assert privacy.epsilon([privacy.RoundEvent(0.1, 1.2, 1e-5)], 1e-5) == math.inf
    # Large population, q = 0.25: K leaves P(more than K devices) ≤ 1e-15, counted.
    population = sampling.Population.from_enrollment(
        {d: f"u{d // 2}" for d in range(800)}, PrivacyUnit.USER
    )
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, cohort_size=100)
    plan = sampling.plan(config, population)
    assert 200 < plan.cap < 800 and 0 < plan.truncation <= sampling.TAIL
    draws = [sampling.poisson_sample(population, 1.0, cap=10) for _ in range(20)]
    assert all(len(d) == 10 and len({x // 2 for x in d}) == 5 for d in draws)
    assert len({tuple(d) for d in draws}) > 1  # a random subset of whole units
    # SecAgg's 16-device limit: a cohort it would often exceed is refused before the round.
    big = sampling.plan(replace(config, secagg=True), population)
    assert big.cap == 16
    with pytest.raises(ValueError, match="at most 16"):
        sampling.check_cap(big, 1e-5)


def test_local_mode_is_replace_one_per_update() -> None:
    config = AggregatorConfig(privacy=PrivacyMode.LOCAL, noise_multiplier=1.0, scale=EXACT)
    event = privacy.round_event(config, _plan(0.1, 100), 10, 15)
    assert event.sampling_q == 1.0  # no amplification: the server knows who sent what
    assert event.noise_multiplier == pytest.approx(0.5)  # replace-one: sensitivity 2C
    assert privacy.relation(config) == NR.REPLACE_ONE
    eps = _gaussian_run(config, event, 5)
    assert eps == pytest.approx(_direct(dp_accounting.GaussianDpEvent(0.5), 5, NR.REPLACE_ONE))
    assert eps == pytest.approx(30.13, abs=0.005)  # the audit's replace-one figure
    two_wrists = privacy.round_event(config, _plan(1.0, 10, per_unit=2), 10, 15)
    assert two_wrists.noise_multiplier == pytest.approx(0.5 / math.sqrt(2))


def test_user_level_demo_scales_sensitivity_by_devices_per_user() -> None:
    """3 users × 2 wrists, distributed z = 1, every device every round, 5 rounds: K = 6
    shares of σ = C/√4 (t = 4), sensitivity 2C: z_eff = √(6/4)/2, ε 22.98 (30.13 before the
    top-up, when σ was C/√6 and only the shares that arrived were released)."""
    enrollment = {d: f"s{(d - 1) // 2:02d}" for d in range(1, 7)}
    population = sampling.Population.from_enrollment(enrollment, PrivacyUnit.USER)
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, scale=EXACT)
    plan = sampling.plan(config, population)
    assert (plan.q, plan.registered_units, plan.devices_per_unit) == (1.0, 3, 2)
    event = privacy.round_event(config, plan, 6, 343)
    expected = _direct(dp_accounting.GaussianDpEvent(math.sqrt(6 / 4) / 2), 5)
    # rel 1e-6: C' carries the device's float slack C·2⁻²² of the clip
    assert _gaussian_run(config, event, 5) == pytest.approx(expected, rel=1e-6)
    device_level = sampling.Population.from_enrollment(enrollment, PrivacyUnit.DEVICE)
    assert sampling.plan(config, device_level).devices_per_unit == 1


def test_too_few_registered_says_so_and_accounts_q_1() -> None:
    population = sampling.Population.from_enrollment(
        {d: f"u{d}" for d in range(10)}, PrivacyUnit.USER
    )
    config = AggregatorConfig(
        privacy=PrivacyMode.CENTRAL, population=1000, cohort_size=10, scale=EXACT
    )
    plan = sampling.plan(config, population)
    assert plan.q == 1.0 and "only 10" in plan.note and "1000" in plan.note
    event = privacy.round_event(config, plan, 10, 15)
    assert _gaussian_run(config, event, 10) == pytest.approx(19.05, abs=0.005)
    assert sampling.poisson_sample(population, plan.q) == list(range(10))


def test_observed_sampling_rate_matches_q() -> None:
    """CSPRNG Poisson sampling: 400 users × 2 devices, q = 0.25, 50 rounds (20 000 trials)."""
    population = sampling.Population.from_enrollment(
        {d: f"u{d // 2}" for d in range(800)}, PrivacyUnit.USER
    )
    plan = sampling.plan(AggregatorConfig(cohort_size=100), population)
    assert plan.q == 0.25 and plan.expected_devices == 200
    draws = [sampling.poisson_sample(population, plan.q) for _ in range(50)]
    users = [{d // 2 for d in chosen} for chosen in draws]
    assert all(len(chosen) == 2 * len(u) for chosen, u in zip(draws, users, strict=True))
    selected = sum(len(u) for u in users)
    trials = 400 * 50
    sd = math.sqrt(trials * 0.25 * 0.75)
    assert abs(selected - 0.25 * trials) < 4 * sd
    assert len({tuple(c) for c in draws}) == 50  # fresh entropy every round


def test_empty_round_charges_nothing_and_none_mode_spends_nothing() -> None:
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED)
    assert privacy.round_event(config, _plan(1.0, 6), 0, 15) is None
    assert privacy.round_event(AggregatorConfig(), _plan(1.0, 6), 6, 15) is None
    assert privacy.ledger_epsilon(config, []) == 0.0


def test_epsilon_against_the_aggregator_is_the_per_update_figure() -> None:
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, clip=0.5, scale=EXACT)
    sigma = privacy.device_noise_std(config, 6.0)
    ours = privacy.aggregator_epsilon(config, [sigma] * 5, 343)
    expected = _direct(dp_accounting.GaussianDpEvent(sigma / 1.0), 5, NR.REPLACE_ONE)
    # rel 1e-6: C' carries the float slack of the device's clip, C·(1 + 2⁻²²)
    assert ours == pytest.approx(expected, rel=1e-6) and ours > 100  # σ_local is weak alone
    central = AggregatorConfig(privacy=PrivacyMode.CENTRAL)
    assert privacy.aggregator_epsilon(central, [0.0], 343) == math.inf
    assert privacy.aggregator_epsilon(config, [], 343) == 0.0


def test_central_noise_is_the_discrete_gaussian_of_std_z_c_on_the_grid() -> None:
    z, clip, size = 1.3, 0.5, 20_000
    config = AggregatorConfig(privacy=PrivacyMode.CENTRAL, noise_multiplier=z, clip=clip)
    noise = privacy.central_noise(config, size)
    scale = float(np.float32(config.quant_scale))
    grid = noise / scale
    assert np.array_equal(grid, np.round(grid))  # integers on the update grid
    # std of 20k draws has relative sd ≈ 0.5 %: the 2 % is 4 sd.
    assert noise.std() == pytest.approx(z * clip, rel=0.02)
    assert abs(noise.mean()) < 5 * z * clip / math.sqrt(size)
    assert not np.array_equal(noise[:100], privacy.central_noise(config, 100))
    assert not privacy.central_noise(AggregatorConfig(), 10).any()


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
    assert privacy.ledger_epsilon(config, events) <= 3.0
    assert privacy.ledger_epsilon(config, [*events, event]) > 3.0


def test_config_refuses_unsound_combinations() -> None:
    with pytest.raises(ValueError, match="not a sum"):
        AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, strategy="median").check()
    with pytest.raises(ValueError, match="cohort"):
        AggregatorConfig(cohort_size=-1).check()


def test_grid_scale_is_the_rule_with_the_devices_noise() -> None:
    """TRAIN, the central noise and the accountant share s = (C + 5σ) / (2^(bits-1) - 1)."""
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, clip=0.5, bits=8)
    sigma = privacy.device_noise_std(config, 6)
    assert privacy.grid_scale(config, sigma) == pytest.approx((0.5 + 5 * sigma) / 127, rel=1e-6)
    grid = privacy.grid_scale(config, sigma)
    # conditional rounding: far below the plain C + s·√P on the 8-bit grid
    assert privacy.update_sensitivity(config, 343, sigma) == grid * rounded_norm_bound(
        0.5, grid, 343
    )
    assert privacy.update_sensitivity(config, 343, sigma) < 0.5 + 0.3 * grid * math.sqrt(343)
    fixed = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, clip=0.5, scale=0.001)
    assert privacy.grid_scale(fixed, sigma) == pytest.approx(0.001)


def test_epsilon_against_an_aggregator_that_sees_only_sums() -> None:
    """SecAgg: every sum that held the unit, k ≥ t shares of σ = z·C/√t each, zero-out with
    sensitivity d'·C', no amplification: dp-accounting's Gaussian composition, and z_eff ≥ z
    for every sum (k = t gives exactly z)."""
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, scale=EXACT, secagg=True)
    sigma = privacy.device_noise_std(config, 4)
    sums = [(sigma, 6, 2), (sigma, 5, 1), (sigma, 4, 2)]
    accountant = dp_accounting.rdp.RdpAccountant()
    for _, k, d in sums:
        accountant.compose(dp_accounting.GaussianDpEvent(sigma * math.sqrt(k) / d))
    ours = privacy.sum_epsilon(config, sums, 15)
    # rel 1e-6: C' carries the device's float slack C·2⁻²² of the clip
    assert ours == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-6)
    at_threshold = privacy.sum_epsilon(config, [(sigma, 4, 1)], 15)
    assert at_threshold == pytest.approx(_direct(dp_accounting.GaussianDpEvent(1.0), 1))
    assert privacy.sum_epsilon(config, [], 15) == 0.0
