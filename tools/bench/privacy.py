"""Cortex-M4 cost of privatizing an update, counted exactly under unicorn.

fedcore's privacy.c and rng.c built for Cortex-M4F (the QEMU board's flags); `fc_privatize` of
a 64×7 head delta (455 values, norm 2C: clipped) on the default 8-bit grid (docs/PRIVACY.md's
rule) with σ = C (the production z_min) and without noise, and the cost of one extra attempt of
the conditional rounding (32 attempts forced with a bound of 0, against one).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench.m4 import M4_FLAGS, M4Machine, build_m4_elf
from tools.fedref.privacy import ROUND_MAX_ATTEMPTS, quantization_scale

ROOT = Path(__file__).resolve().parents[2]
FEDCORE = ROOT / "firmware" / "lib" / "fedcore"
ENTRY_POINTS = ("bench_round_conditional", "bench_norm_bounds", "bench_privatize")
N_PARAMS = 64 * 7 + 7
CLIP = 0.5


def build_elf() -> Path:
    sources = [
        Path(__file__).with_name("privacy_m4.c"),
        *(FEDCORE / "src" / f"{name}.c" for name in ("privacy", "rng")),
    ]
    flags = (*M4_FLAGS, "-ffp-contract=off")
    return build_m4_elf(
        sources,
        ROOT / "build" / "bench" / "privacy_m4.elf",
        include_dirs=[FEDCORE / "include"],
        keep=ENTRY_POINTS,
        flags=flags,
        libs=["-lm"],
    )


def round_conditional(
    machine: M4Machine, x: np.ndarray, scale: float, bound2: float, seed: int, runs: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """fc_round_conditional on the M4: (attempts per run, accepted q runs×n, next word,
    instructions)."""
    x = np.asarray(x, "<f4")
    machine.reset_heap()
    args = machine.alloc(struct.pack("<fIdII", scale, x.size, bound2, seed, runs))
    src = machine.alloc(x.tobytes())
    attempts = machine.alloc(4 * runs)
    q = machine.alloc(8 * runs * x.size)
    result = machine.call("bench_round_conditional", args, src, attempts, q)
    return (
        np.frombuffer(machine.read(attempts, 4 * runs), "<u4").copy(),
        np.frombuffer(machine.read(q, 8 * runs * x.size), "<i8").reshape(runs, x.size),
        result.return_value,
        result.instructions,
    )


def norm_bounds(machine: M4Machine, queries: list[tuple[float, float, int]]) -> np.ndarray:
    """(fc_rounding_norm2_bound, fc_rounded_norm_bound) of each (clip, scale, n) on the M4."""
    machine.reset_heap()
    src = machine.alloc(b"".join(struct.pack("<ffI", *q) for q in queries))
    out = machine.alloc(16 * len(queries))
    machine.call("bench_norm_bounds", src, len(queries), out)
    return np.frombuffer(machine.read(out, 16 * len(queries)), "<f8").reshape(-1, 2)


def _privatize_instructions(machine: M4Machine, delta: np.ndarray, noise_std: float) -> int:
    machine.reset_heap()
    scale = quantization_scale(CLIP, noise_std, 8)
    params = machine.alloc(struct.pack("<fffB3x", CLIP, noise_std, scale, 8))
    src = machine.alloc(np.asarray(delta, "<f4").tobytes())
    out = machine.alloc(4 * delta.size)
    result = machine.call("bench_privatize", src, delta.size, params, out, 7)
    if result.return_value != 0:
        raise RuntimeError(f"fc_privatize returned {result.return_value}")
    return result.instructions


def measure(task: str = "watch") -> dict[str, Any]:
    machine = M4Machine(build_elf())
    delta = np.random.default_rng(0).standard_normal(N_PARAMS).astype(np.float32)
    delta *= np.float32(2 * CLIP / np.linalg.norm(delta))
    scale = quantization_scale(CLIP, CLIP, 8)
    x = delta * np.float32(0.5)  # the clipped delta, norm C
    once = round_conditional(machine, x, scale, math.inf, 1, 1)[3]
    failing = round_conditional(machine, x, scale, 0.0, 1, 1)[3]
    return {
        "m4_instr_privatize_64x7": _privatize_instructions(machine, delta, CLIP),
        "m4_instr_privatize_64x7_no_noise": _privatize_instructions(machine, delta, 0.0),
        "m4_instr_per_rounding_attempt_64x7": round((failing - once) / (ROUND_MAX_ATTEMPTS - 1)),
        "bits": 8,
        "grid": "docs/PRIVACY.md's rule for σ = C (8 bits); noise σ = C, i.e. 21.2 grid steps",
    }
