"""The simulator runs the mechanism that runs: Poisson sampling from the aggregator, dropouts,
the device's quantization and discrete Gaussian in distributed mode, and the aggregator's own
accountant — its ε is dp-accounting's for the event that ran; no noise means no ε."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from scipy.stats import binom

from tools.fedref.privacy import quantization_scale, rounded_norm_bound
from tools.fleet.simulator import SimConfig, load_clients, simulate_one


def _epsilon(q: float, z_eff: list[float], delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    for z in z_eff:
        gaussian = dp_accounting.GaussianDpEvent(z)
        accountant.compose(gaussian if q >= 1 else dp_accounting.PoissonSampledDpEvent(q, gaussian))
    return accountant.get_epsilon(delta)


@pytest.fixture(scope="module")
def watch() -> tuple:
    from model_gen import paths

    config = SimConfig(task="watch", rounds=6, cohort=5, noise_multipliers=(0.0, 1.0), dropout=0.2)
    clients = load_clients(config)
    head = np.load(paths.model_dir("watch") / paths.HEAD_NAME)
    return config, clients, head["w"].astype(np.float32), head["b"].astype(np.float32)


def test_no_noise_learns_and_spends_nothing(watch: tuple) -> None:
    _, clients, w0, b0 = watch
    initial = float(np.mean(np.argmax(clients.test_emb @ w0 + b0, 1) == clients.test_y))
    clean = simulate_one(SimConfig(task="watch", rounds=6, cohort=0), clients, 0.0, w0, b0)
    assert clean["epsilon_by_round"] == [None] * 6
    assert clean["accuracy_by_round"][-1] > initial  # federated k-shot data helps the head


@pytest.mark.parametrize("mode", ["central", "distributed"])
def test_epsilon_is_the_accountants_for_the_event_that_ran(watch: tuple, mode: str) -> None:
    config, clients, w0, b0 = watch
    run = simulate_one(config, clients, 1.0, w0, b0, mode)
    n = len(clients.train_y)
    q = config.cohort / n
    assert run["sampling_q"] == q and run["mode"] == mode
    n_params = w0.size + b0.size
    m = q * n  # expected devices: the fixed denominator
    t = int(m) // 2 + 1  # distributed: σ = z·C/√t per device
    # K: the least cap a Poisson draw over n + 1 devices exceeds with probability ≤ 1e-15;
    # every distributed release carries K shares (the aggregator tops up), whoever arrived
    cap = next(k for k in range(n + 2) if binom.sf(k, n + 1, q) <= 1e-15)
    sigma = config.clip / math.sqrt(t) if mode == "distributed" else 0.0  # z = 1
    scale = quantization_scale(config.clip, sigma, config.bits)  # docs/PRIVACY.md's rule
    c_prime = scale * rounded_norm_bound(config.clip, scale, n_params)
    z_eff = [
        (sigma * math.sqrt(cap) if mode == "distributed" else config.clip) / c_prime
        for k in run["received_by_round"]
        if k > 0
    ]
    expected = _epsilon(q, z_eff, config.delta)
    assert math.isclose(run["epsilon_by_round"][-1], expected, rel_tol=1e-9)
    assert all(0.0 <= a <= 1.0 for a in run["accuracy_by_round"])
    assert sum(run["received_by_round"]) < config.rounds * n  # sampling and dropouts happened
