"""Who takes part in a round: Poisson sampling of the *registered* units from a CSPRNG.

The population is the store's enrollment (device → user), not the ports that happen to be
connected: a registered device that is selected but does not answer is a dropout, and the
accountant charges for it. Each unit (a user, or a device at device level) is selected
independently with probability q = min(1, cohort / registered units); all devices of a
selected user are asked. The selection is never published (docs/PRIVACY.md, "Sampling").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from tools.aggregator.config import AggregatorConfig, PrivacyUnit

# Uniform [0, 1) from os.urandom (53 bits): the selection cannot be predicted or replayed.
_CSPRNG = secrets.SystemRandom()


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
    return SamplingPlan(
        q, registered, population.devices, population.max_devices_per_unit, "; ".join(notes)
    )


def poisson_sample(
    population: Population, q: float, uniform: Callable[[], float] = _CSPRNG.random
) -> list[int]:
    """Device ids of the selected units: each unit independently with probability q."""
    chosen = [ids for _, ids in sorted(population.devices_of.items()) if q >= 1.0 or uniform() < q]
    return sorted(d for ids in chosen for d in ids)
