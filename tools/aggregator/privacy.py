"""Privacy modes (DESIGN §4) and RDP accounting with Google's dp-accounting.

The accountant state is the list of per-round events (sampling rate q, effective noise
multiplier z); ε is recomputed from that list, so it survives restarts exactly.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import dp_accounting
import numpy as np
from absl import logging as absl_logging

from tools.aggregator.config import AggregatorConfig, PrivacyMode

# dp-accounting warns through absl when a fractional RDP order fails to converge; the order is
# then left out of the minimum over orders, which keeps ε an upper bound. Not for users' eyes.
absl_logging.set_verbosity(absl_logging.ERROR)


class BudgetExceededError(RuntimeError):
    """The next round would spend more ε than the configured budget."""


@dataclass(frozen=True)
class RoundEvent:
    """One round as the accountant sees it."""

    sampling_q: float  # probability a device is in the cohort (1.0 in local mode)
    noise_multiplier: float  # effective z of the released sum (or of each update: local)


def device_noise_std(config: AggregatorConfig, cohort_size: int) -> float:
    """σ each device adds to its Δ, in Δ units."""
    z, c = config.noise_multiplier, config.clip
    if config.privacy == PrivacyMode.DISTRIBUTED:
        return z * c / math.sqrt(cohort_size)
    if config.privacy == PrivacyMode.LOCAL:
        return z * c
    return 0.0


def central_noise(config: AggregatorConfig, size: int) -> np.ndarray:
    """N(0, z²C²) for the sum in central mode (zeros otherwise), from OS entropy."""
    if config.privacy != PrivacyMode.CENTRAL:
        return np.zeros(size)
    rng = np.random.default_rng(secrets.randbits(128))
    return rng.normal(0.0, config.noise_multiplier * config.clip, size)


def round_event(
    config: AggregatorConfig, population: int, cohort: int, received: int, n_params: int = 0
) -> RoundEvent | None:
    """The event this round adds to the ledger; None when the mode spends nothing.

    Distributed mode: only `received` of `cohort` noise shares arrive, so the sum's noise is
    z·√(received/cohort); accounting uses that smaller multiplier, never the planned one.
    With `n_params` given, z is taken relative to the quantized update's true L2 bound
    C + scale·√P (stochastic rounding moves each of the P values by less than one step)."""
    if config.privacy == PrivacyMode.NONE:
        return None
    z = config.noise_multiplier
    if n_params:
        scale = config.quant_scale_for(device_noise_std(config, cohort))
        z *= config.clip / (config.clip + scale * math.sqrt(n_params))
    if config.privacy == PrivacyMode.DISTRIBUTED:
        z *= math.sqrt(received / cohort) if cohort else 0.0
    if config.privacy == PrivacyMode.LOCAL:
        return RoundEvent(1.0, z)  # each release is seen on its own: no amplification
    return RoundEvent(min(1.0, cohort / population), z)


def dp_event(events: list[RoundEvent]) -> dp_accounting.DpEvent:
    """Compose the ledger as dp-accounting events (identical rounds self-composed)."""
    parts: list[dp_accounting.DpEvent] = []
    for event, count in _runs(events):
        gaussian = dp_accounting.GaussianDpEvent(event.noise_multiplier)
        single = (
            gaussian
            if event.sampling_q >= 1.0
            else dp_accounting.PoissonSampledDpEvent(event.sampling_q, gaussian)
        )
        parts.append(dp_accounting.SelfComposedDpEvent(single, count))
    return dp_accounting.ComposedDpEvent(parts)


def epsilon(events: list[RoundEvent], delta: float) -> float:
    """ε at δ after `events` (RDP accountant, add/remove-one neighbours); 0 when empty."""
    if not events:
        return 0.0
    if any(e.noise_multiplier <= 0 for e in events):
        return math.inf
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_event(events))
    return float(accountant.get_epsilon(delta))


def _runs(events: list[RoundEvent]) -> list[tuple[RoundEvent, int]]:
    runs: list[tuple[RoundEvent, int]] = []
    for event in events:
        if runs and runs[-1][0] == event:
            runs[-1] = (event, runs[-1][1] + 1)
        else:
            runs.append((event, 1))
    return runs


def check_budget(
    config: AggregatorConfig, events: list[RoundEvent], planned: RoundEvent | None
) -> float:
    """ε after the planned round; raises BudgetExceededError if it exceeds the budget."""
    if planned is None:
        return epsilon(events, config.delta)
    after = epsilon([*events, planned], config.delta)
    if after > config.epsilon_budget:
        raise BudgetExceededError(
            f"the next round would reach ε = {after:.3f} at δ = {config.delta:g}, over the "
            f"budget {config.epsilon_budget:g}; raise --epsilon-budget or stop here"
        )
    return after
