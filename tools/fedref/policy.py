"""Twin of fedcore/policy.{h,c}: the device's build-time privacy policy and its TRAIN verdicts.

The defaults here equal the C defaults of each profile; a test reads the policy a built device
announces in INFO and compares it with these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tools.link.messages import NackCode

BITS_FLAG = {8: 0x01, 16: 0x02, 32: 0x04}
F32 = np.float32


@dataclass(frozen=True)
class Policy:
    """fc_policy_t. Production defaults; `replay()` gives the simulation profile's."""

    z_min: float = 1.0
    clip_max: float = 4.0
    scale_min_rel: float = 2.0**-16
    scale_max_rel: float = 2.0**-4
    bits_mask: int = 0x07
    allow_no_clip: bool = False
    max_work: int = 8192
    delta: float = 1e-5
    epsilon_budget: float = 16.0

    @classmethod
    def production(cls) -> Policy:
        return cls()

    @classmethod
    def replay(cls) -> Policy:
        return cls(
            z_min=0.0,
            clip_max=3.0e38,
            scale_min_rel=0.0,
            scale_max_rel=3.0e38,
            allow_no_clip=True,
            epsilon_budget=math.inf,
        )

    def check(
        self,
        clip: float,
        noise_std: float,
        scale: float,
        bits: int,
        epochs: int,
        example_capacity: int,
    ) -> NackCode | None:
        """fc_policy_check: None when allowed, else the NACK code (same order of checks).
        Floats are taken as the float32 the wire carries, then computed in double like C."""
        clip, std, scale = float(F32(clip)), float(F32(noise_std)), float(F32(scale))
        if clip == 0.0:
            if not self.allow_no_clip:
                return NackCode.POLICY_CLIP
        elif clip > self.clip_max:
            return NackCode.POLICY_CLIP
        if std / scale < self.z_min * clip / scale:
            return NackCode.POLICY_NOISE
        if not BITS_FLAG.get(bits, 0) & self.bits_mask:
            return NackCode.POLICY_QUANT
        if clip > 0 and not self.scale_min_rel * clip <= scale <= self.scale_max_rel * clip:
            return NackCode.POLICY_QUANT
        if epochs * example_capacity > self.max_work:
            return NackCode.POLICY_WORK
        return None
