"""Aggregator configuration: one dataclass, checked once, stored with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from tools.fedref.privacy import quantization_scale


class PrivacyMode(StrEnum):
    NONE = "none"
    CENTRAL = "central"  # devices clip; the server adds N(0, z²C²) to the sum
    DISTRIBUTED = "distributed"  # each device adds N(0, (zC)²/n); the sum carries N(0, z²C²)
    LOCAL = "local"  # each device adds N(0, z²C²): every update is private on its own


class PrivacyUnit(StrEnum):
    """Whose privacy ε is about (docs/PRIVACY.md, "Units of privacy")."""

    USER = "user"  # users are sampled; sensitivity is scaled by the user's device count
    DEVICE = "device"  # every device is sampled on its own and counted as its own user


class Strategy(StrEnum):
    FEDAVG = "fedavg"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"


SUM_BASED = (Strategy.FEDAVG,)


@dataclass(frozen=True)
class AggregatorConfig:
    """Everything a run depends on. `check()` explains what is inconsistent."""

    rounds: int = 10
    cohort_size: int = 0  # expected units (users or devices) per round; 0: all (q = 1)
    privacy: PrivacyMode = PrivacyMode.NONE
    noise_multiplier: float = 1.0  # z
    clip: float = 1.0  # C: L2 bound of each Δ
    delta: float = 1e-5  # δ of the reported (ε, δ)
    epsilon_budget: float = float("inf")
    population: int = 0  # declared population; sampling is over the *registered* units only
    unit: PrivacyUnit = PrivacyUnit.USER
    strategy: Strategy = Strategy.FEDAVG
    trim_fraction: float = 0.1  # trimmed mean: fraction cut at each end
    server_lr: float = 1.0
    server_optimizer: str = "sgd"  # "sgd" or "adam" (FedAdam, Reddi et al. 2021)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    adam_tau: float = 1e-3
    lr: float = 0.05  # device learning rate
    epochs: int = 1
    batch: int = 8
    momentum: float = 0.0
    weight_decay: float = 0.0
    example_clip: float = 0.0
    bits: int = 8  # 455 B of values at 64×7; conditional rounding keeps C' near C (PRIVACY.md)
    scale: float = 0.0  # quantization step; 0: from clip, noise and bits (quant_scale_for)
    deadline_s: float = 30.0  # per round, for TRAIN to UPDATE_READY and fetch
    min_updates: int = 1  # fewer accepted updates: the round commits without a new head
    secagg: bool = False  # distributed mode: the aggregator sees only the sum (issue 13)
    # Shamir threshold t, also the share count device noise is calibrated to (σ = zC/√t);
    # 0: ⌊m/2⌋ + 1 of the expected m devices. A round over n devices uses max(t, ⌊n/2⌋ + 1).
    secagg_threshold: int = 0
    # Replay-profile boards (host windows, SEED, seeded TRAIN, no device privacy policy) take
    # part only in a run declared a simulation; otherwise they are refused every round.
    simulation: bool = False
    train_seed: int = 0  # replay profile only: seeded TRAIN (device noise reproducible); 0 off

    def check(self) -> None:
        """Raise ValueError naming the inconsistent option and what to change."""
        if self.cohort_size < 0 or self.population < 0:
            raise ValueError("--cohort and --population must be >= 0")
        if self.privacy in (PrivacyMode.CENTRAL, PrivacyMode.DISTRIBUTED) and (
            self.strategy not in SUM_BASED
        ):
            raise ValueError(
                f"--strategy {self.strategy} is not a sum; central and distributed "
                "noise protect sums only: use fedavg, or privacy none/local"
            )
        if self.privacy != PrivacyMode.NONE and not self.noise_multiplier > 0:
            raise ValueError("a DP mode needs --noise-multiplier > 0")
        if not self.clip > 0 or self.bits not in (8, 16, 32) or self.scale < 0:
            raise ValueError("need clip > 0, bits in 8/16/32, scale >= 0")
        if not 0 <= self.trim_fraction < 0.5:
            raise ValueError("trim_fraction must be in [0, 0.5)")
        if self.secagg and self.privacy != PrivacyMode.DISTRIBUTED:
            raise ValueError(
                "--secagg hides each update so that only the sum of the devices' noise is seen: "
                "use it with --privacy distributed"
            )
        if self.server_optimizer not in ("sgd", "adam"):
            raise ValueError("server_optimizer is 'sgd' or 'adam'")

    @property
    def quant_scale(self) -> float:
        """The step without device noise (privacy none or central)."""
        return self.quant_scale_for(0.0)

    def quant_scale_for(self, noise_std: float) -> float:
        """The step TRAIN asks for: `scale` if set, else the rule of docs/PRIVACY.md
        (tools/fedref/privacy.quantization_scale) for the σ each device adds."""
        return self.scale if self.scale > 0 else quantization_scale(self.clip, noise_std, self.bits)

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AggregatorConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known["privacy"] = PrivacyMode(known.get("privacy", "none"))
        known["strategy"] = Strategy(known.get("strategy", "fedavg"))
        known["unit"] = PrivacyUnit(known.get("unit", "user"))
        return cls(**known)
