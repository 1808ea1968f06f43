"""Aggregation of accepted Δs and the server optimizer step."""

from __future__ import annotations

import numpy as np

from tools.aggregator.config import AggregatorConfig, Strategy


def combine(
    deltas: np.ndarray, config: AggregatorConfig, noise: np.ndarray, denominator: float = 0.0
) -> np.ndarray:
    """Aggregate n×P Δs into one P vector. FedAvg: (Σ Δ + noise) / denominator, where DP modes
    pass the expected cohort m fixed before the round (never the count that arrived, which
    would make the scale of the release depend on who took part); 0 means n."""
    n = deltas.shape[0]
    if config.strategy == Strategy.MEDIAN:
        return np.median(deltas, axis=0)
    if config.strategy == Strategy.TRIMMED_MEAN:
        cut = int(np.floor(config.trim_fraction * n))
        ordered = np.sort(deltas, axis=0)
        return ordered[cut : n - cut].mean(axis=0)
    return (deltas.sum(axis=0) + noise) / (denominator or n)


class ServerOptimizer:
    """SGD (x += lr·Δ̄) or FedAdam (Reddi et al., "Adaptive Federated Optimization", 2021)."""

    def __init__(self, config: AggregatorConfig, size: int, state: bytes | None = None) -> None:
        self.config = config
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        if state:
            both = np.frombuffer(state, dtype="<f8")
            self.m, self.v = both[:size].copy(), both[size:].copy()

    def step(self, params: np.ndarray, update: np.ndarray) -> np.ndarray:
        c = self.config
        if c.server_optimizer == "sgd":
            return params + c.server_lr * update
        self.m = c.adam_beta1 * self.m + (1 - c.adam_beta1) * update
        self.v = c.adam_beta2 * self.v + (1 - c.adam_beta2) * update**2
        return params + c.server_lr * self.m / (np.sqrt(self.v) + c.adam_tau)

    def state(self) -> bytes:
        return np.concatenate([self.m, self.v]).astype("<f8").tobytes()
