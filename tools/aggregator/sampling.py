"""Who takes part in a round: Poisson sampling of the *registered* units from a CSPRNG.

The population is the store's enrollment (device → user), not the ports that happen to be
connected: a registered device that is selected but does not answer is a dropout, and the
accountant charges for it. Each unit (a user, or a device at device level) is selected
independently with probability q = min(1, cohort / registered units); all devices of a
selected user are asked. The selection is never published (docs/PRIVACY.md, "Sampling").

In distributed mode a round holds at most K devices (`SamplingPlan.cap`), the number of noise
shares every release carries (the aggregator tops the arrivals up to K): K is the smallest
count the Poisson sample exceeds with probability at most TAIL (all registered devices when
q = 1), and at most the firmware's SecAgg peer limit with `--secagg`. A draw above K keeps a
uniformly random subset of its units (`poisson_sample`); the probability that this happens is
the plan's `truncation`, which the accountant adds to δ (privacy.epsilon).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from tools.aggregator.config import AggregatorConfig, PrivacyMode, PrivacyUnit

# Uniform [0, 1) from os.urandom (53 bits): the selection cannot be predicted or replayed.
_CSPRNG = secrets.SystemRandom()
# Largest per-round probability that the Poisson sample exceeds the cap K: it enters δ as
# (1 + e^ε)·Σ truncation, ≈ 10⁻⁹ after 100 rounds at ε = 10 (δ is typically 10⁻⁵).
TAIL = 1e-15
SECAGG_MAX_DEVICES = 16  # FC_SECAGG_MAX_PEERS of fedcore/secagg.h (tools/secagg/server.py)


@dataclass(frozen=True)
class Population:
    """Registered units, each with the devices it owns (sorted, deterministic order)."""

    devices_of: dict[str, tuple[int, ...]]

    @classmethod
    def from_enrollment(cls, enrollment: dict[int, str], unit: PrivacyUnit) -> Population:
        groups: dict[str, list[int]] = {}
        for device_id, user_id in sorted(enrollment.items()):
            key = user_id if unit == PrivacyUnit.USER else f"device-{device_id}"
            groups.setdefault(key, []).append(device_id)
        return cls({key: tuple(ids) for key, ids in sorted(groups.items())})

    @property
    def units(self) -> int:
        return len(self.devices_of)

    @property
    def devices(self) -> int:
        return sum(len(ids) for ids in self.devices_of.values())

    @property
    def max_devices_per_unit(self) -> int:
        return max((len(ids) for ids in self.devices_of.values()), default=1)

    def unit_of(self) -> dict[int, str]:
        return {d: unit for unit, ids in self.devices_of.items() for d in ids}


@dataclass(frozen=True)
class SamplingPlan:
    """What a round's sampling is, fixed before anyone is asked (the accountant's event)."""

    q: float
    registered_units: int
    registered_devices: int
    devices_per_unit: int  # d: the sensitivity multiplier of one unit
    note: str  # why q differs from what was asked for, "" otherwise
    cap: int = 0  # K: most devices asked in a round = noise shares per release (distributed)
    truncation: float = 0.0  # P(the Poisson draw holds more than `cap` devices)

    @property
    def expected_devices(self) -> float:
        """m: the fixed denominator of the mean and the distributed-noise split."""
        return self.q * self.registered_devices


def plan(config: AggregatorConfig, population: Population) -> SamplingPlan:
    """q = cohort / registered units, clamped to 1 with a note when too few are registered."""
    registered = population.units
    if registered == 0:
        raise ValueError("no registered device: enroll devices (--enrollment) before a round")
    wanted = config.cohort_size or registered
    q = min(1.0, wanted / registered)
    notes = []
    if config.population > registered:
        notes.append(
            f"--population {config.population} declared but only {registered} "
            f"{config.unit}s are registered: sampling is over the {registered} registered"
        )
    if wanted >= registered and config.cohort_size:
        notes.append(f"cohort {wanted} ≥ {registered} registered {config.unit}s: q = 1")
    cap, truncation = cohort_cap(config, population, q)
    return SamplingPlan(
        q,
        registered,
        population.devices,
        population.max_devices_per_unit,
        "; ".join(notes),
        cap,
        truncation,
    )


def selected_devices_pmf(population: Population, q: float) -> np.ndarray:
    """pmf of the number of devices a Poisson draw selects (index = devices). The population
    is taken with one extra unit of the largest size, so the bound also holds for the
    neighbouring fleet with one more unit (add/remove)."""
    sizes: dict[int, int] = {}
    for ids in population.devices_of.values():
        sizes[len(ids)] = sizes.get(len(ids), 0) + 1
    largest = population.max_devices_per_unit
    sizes[largest] = sizes.get(largest, 0) + 1
    pmf = np.ones(1)
    for size, units in sorted(sizes.items()):
        group = np.zeros(size * units + 1)
        group[::size] = binom.pmf(np.arange(units + 1), units, q)
        pmf = np.convolve(pmf, group)
    return pmf


def cohort_cap(config: AggregatorConfig, population: Population, q: float) -> tuple[int, float]:
    """(K, truncation): the round's device cap and the probability a draw exceeds it. Only
    distributed mode caps (its release carries exactly K noise shares); the other modes ask
    every selected device (K = all registered devices, never exceeded)."""
    devices = population.devices
    if q >= 1.0:  # every registered device, always the same count
        cap = min(devices, SECAGG_MAX_DEVICES) if config.secagg else devices
        return cap, 0.0 if cap >= devices else 1.0
    pmf = selected_devices_pmf(population, q)
    exceeds = np.append(np.cumsum(pmf[::-1])[::-1][1:], 0.0)  # exceeds[k] = P(X > k)
    if config.privacy != PrivacyMode.DISTRIBUTED:
        cap = devices + population.max_devices_per_unit  # never exceeded
    else:
        cap = int(np.argmax(exceeds <= TAIL))  # the least K with P(X > K) <= TAIL
    if config.secagg:
        cap = min(cap, SECAGG_MAX_DEVICES)
    truncation = float(exceeds[cap]) if cap < len(exceeds) else 0.0
    return cap, truncation


def check_cap(plan: SamplingPlan, delta: float) -> None:
    """Refuse a round whose cap would bind often (only SecAgg's peer limit can make it): the
    truncation enters δ (privacy.epsilon), so it must stay far below it."""
    if plan.truncation > 1e-3 * delta:
        raise ValueError(
            f"a round would select more than {plan.cap} devices with probability "
            f"{plan.truncation:.2g}, and a SecAgg round takes at most {SECAGG_MAX_DEVICES}: "
            "lower --cohort"
        )


def poisson_sample(
    population: Population,
    q: float,
    cap: int = 0,
    uniform: Callable[[], float] = _CSPRNG.random,
) -> list[int]:
    """Device ids of the selected units: each unit independently with probability q; a draw
    of more than `cap` devices (0: no cap) keeps a uniformly random subset of its units
    (`secrets`) that fits, the others are not asked."""
    chosen = [ids for _, ids in sorted(population.devices_of.items()) if q >= 1.0 or uniform() < q]
    if cap:
        _CSPRNG.shuffle(chosen)
        while sum(len(ids) for ids in chosen) > cap:
            chosen.pop()
    return sorted(d for ids in chosen for d in ids)
