"""Privacy modes (DESIGN §4, docs/PRIVACY.md) and RDP accounting with Google's dp-accounting.

The accountant state is the list of per-round events (sampling rate q, effective noise
multiplier z_eff) of the rounds that *released* a head; ε is recomputed from that list, so it
survives restarts exactly. z_eff is the released noise std divided by the L2 sensitivity of one
unit of privacy under the mode's neighbouring relation:

  central      add/remove one unit   z_eff = z·C / (d·C')
  distributed  add/remove one unit   z_eff = z·C·√(received/m) / (d·C')   (shares that arrived)
  local        replace one unit      z_eff = z·C / (2·C'·√d)              (no amplification)

with C' the L2 bound of one quantized update on the grid s (`update_sensitivity`: conditional
rounding, about √(C² + s²P/4 + s(C + s√P/2)), at most C + s·√P), d the largest number of
devices one unit owns (1 at device level), m the expected number of devices per round.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import dp_accounting
import numpy as np
from absl import logging as absl_logging

from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.fedref.privacy import discrete_gaussian, rounded_norm_bound
from tools.fedref.rng import Rng

# dp-accounting warns through absl when a fractional RDP order fails to converge; the order is
# then left out of the minimum over orders, which keeps ε an upper bound. Not for users' eyes.
absl_logging.set_verbosity(absl_logging.ERROR)

NeighbourRelation = dp_accounting.NeighboringRelation


class BudgetExceededError(RuntimeError):
    """The next round would spend more ε than the configured budget."""


@dataclass(frozen=True)
class RoundEvent:
    """One released round as the accountant sees it."""

    sampling_q: float  # probability a unit is selected (1.0 in local mode)
    noise_multiplier: float  # released noise std / sensitivity of one unit (z_eff)


def relation(config: AggregatorConfig) -> NeighbourRelation:
    """Local mode protects each update (the server knows who sent it): replace-one. Central and
    distributed protect membership in a Poisson-sampled sum: add/remove-one."""
    if config.privacy == PrivacyMode.LOCAL:
        return NeighbourRelation.REPLACE_ONE
    return NeighbourRelation.ADD_OR_REMOVE_ONE


def grid_scale(config: AggregatorConfig, noise_std: float) -> float:
    """The quantization step s that TRAIN sends when devices add σ = noise_std (as the float32
    the device receives); the one place the accountant, the noise and TRAIN take s from."""
    return float(np.float32(config.quant_scale_for(noise_std)))


def update_sensitivity(config: AggregatorConfig, n_params: int, noise_std: float = 0.0) -> float:
    """L2 bound C' of one quantized update before noise, in Δ units: s times the norm bound the
    device enforces with conditional rounding (`fedref.privacy.rounded_norm_bound`, the device
    ledger's own; about √(C² + s²P/4 + s(C + s√P/2)) and never above C + s·√P;
    docs/PRIVACY.md "Sensitivity on the grid")."""
    scale = grid_scale(config, noise_std)
    return scale * rounded_norm_bound(config.clip, scale, n_params)


def device_noise_std(config: AggregatorConfig, expected_devices: float) -> float:
    """σ each device adds to its Δ, in Δ units: distributed splits z·C over the *expected*
    number of devices m (fixed before the round, never the count that answered)."""
    z, c = config.noise_multiplier, config.clip
    if config.privacy == PrivacyMode.DISTRIBUTED:
        return z * c / math.sqrt(max(expected_devices, 1.0))
    if config.privacy == PrivacyMode.LOCAL:
        return z * c
    return 0.0


def central_noise(config: AggregatorConfig, size: int) -> np.ndarray:
    """Central mode: discrete Gaussian N_Z(0, (zC/s)²) on the update grid s, drawn with the
    device's own sampler twin (Canonne-Kamath-Steinke) from ChaCha20 seeded by `secrets`;
    returned in Δ units (integers × s). Zeros in the other modes."""
    if config.privacy != PrivacyMode.CENTRAL:
        return np.zeros(size)
    scale = grid_scale(config, 0.0)
    sigma_int = config.noise_multiplier * config.clip / scale
    rng = Rng(secrets.token_bytes(32))
    ints = np.array([discrete_gaussian(rng, sigma_int) for _ in range(size)], dtype=np.int64)
    return ints.astype(np.float64) * scale


def round_event(
    config: AggregatorConfig,
    sampling_q: float,
    expected_devices: float,
    received: int,
    n_params: int,
    devices_per_unit: int = 1,
) -> RoundEvent | None:
    """The event a released round adds to the ledger (module docstring); None when the mode
    spends nothing or nothing was received (an empty round releases nothing)."""
    if config.privacy == PrivacyMode.NONE or received <= 0:
        return None
    z, c = config.noise_multiplier, config.clip
    sensitivity = update_sensitivity(config, n_params, device_noise_std(config, expected_devices))
    if config.privacy == PrivacyMode.LOCAL:
        return RoundEvent(1.0, z * c / (2 * sensitivity * math.sqrt(devices_per_unit)))
    if config.privacy == PrivacyMode.DISTRIBUTED:
        z *= math.sqrt(received / max(expected_devices, 1.0))
    return RoundEvent(min(1.0, sampling_q), z * c / (devices_per_unit * sensitivity))


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


def epsilon(
    events: list[RoundEvent],
    delta: float,
    neighbours: NeighbourRelation = NeighbourRelation.ADD_OR_REMOVE_ONE,
) -> float:
    """ε at δ after `events` (RDP accountant under `neighbours`); 0 when empty."""
    if not events:
        return 0.0
    if any(e.noise_multiplier <= 0 for e in events):
        return math.inf
    accountant = dp_accounting.rdp.RdpAccountant(neighboring_relation=neighbours)
    accountant.compose(dp_event(events))
    return float(accountant.get_epsilon(delta))


def ledger_epsilon(config: AggregatorConfig, events: list[RoundEvent]) -> float:
    """ε against consumers of released heads, under the mode's neighbouring relation."""
    return epsilon(events, config.delta, relation(config))


def aggregator_epsilon(config: AggregatorConfig, noise_stds: list[float], n_params: int) -> float:
    """ε of one unit against the aggregator, which sees every update it receives and knows who
    sent it: each update is a Gaussian release with σ = its device's noise, replace-one
    (sensitivity 2C'), composed over all the unit's updates. ∞ when an update had no noise
    (none, central: the server sees Δ in the clear). 0 when the unit sent nothing."""
    if not noise_stds:
        return 0.0
    if config.privacy in (PrivacyMode.NONE, PrivacyMode.CENTRAL) or min(noise_stds) <= 0:
        return math.inf
    events = [
        RoundEvent(1.0, sigma / (2 * update_sensitivity(config, n_params, sigma)))
        for sigma in noise_stds
    ]
    return epsilon(events, config.delta, NeighbourRelation.REPLACE_ONE)


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
    after = ledger_epsilon(config, [*events, *([planned] if planned else [])])
    if after > config.epsilon_budget:
        raise BudgetExceededError(
            f"the next round would reach ε = {after:.3f} at δ = {config.delta:g}, over the "
            f"budget {config.epsilon_budget:g}; raise --epsilon-budget or stop here"
        )
    return after
