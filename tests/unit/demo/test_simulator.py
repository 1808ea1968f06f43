"""The simulator runs the same loop as the aggregator with the vectorized twins: its ε is the
accountant's, noise costs accuracy only as noise should, and no noise means no ε spent."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np

from tools.fedref.privacy import quantization_scale
from tools.fleet.simulator import SimConfig, load_clients, simulate_one


def test_watch_simulation_learns_and_accounts() -> None:
    config = SimConfig(task="watch", rounds=6, cohort=5, noise_multipliers=(0.0, 1.0))
    clients = load_clients(config)
    from model_gen import paths

    head = np.load(paths.model_dir("watch") / paths.HEAD_NAME)
    w0, b0 = head["w"].astype(np.float32), head["b"].astype(np.float32)
    initial = float(np.mean(np.argmax(clients.test_emb @ w0 + b0, 1) == clients.test_y))
    clean = simulate_one(config, clients, 0.0, w0, b0)
    noisy = simulate_one(config, clients, 1.0, w0, b0)
    assert clean["epsilon_by_round"] == [None] * 6
    assert clean["accuracy_by_round"][-1] > initial  # federated k-shot data helps the head
    q = config.cohort / len(clients.train_y)
    accountant = dp_accounting.rdp.RdpAccountant()
    # z relative to the 8-bit update's L2 bound C + s·√P (docs/PRIVACY.md)
    scale = quantization_scale(config.clip, 0.0, config.bits)
    z = config.clip / (config.clip + scale * math.sqrt(w0.size + b0.size))
    sampled = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    accountant.compose(dp_accounting.SelfComposedDpEvent(sampled, 6))
    assert math.isclose(noisy["epsilon_by_round"][-1], accountant.get_epsilon(config.delta),
                        rel_tol=1e-9)
    assert all(0.0 <= a <= 1.0 for a in noisy["accuracy_by_round"])
