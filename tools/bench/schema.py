"""The shape of build/bench/bench.json: every section, every key, and what kind of value.

`validate(report)` returns the list of problems (empty when the report conforms). Numbers must
be finite, and no section may be left out: every figure is measured or derived in the run.
"""

from __future__ import annotations

import math
from typing import Any

NUMBER = "number"
TEXT = "text"
SIZES = ("32x7", "64x7", "64x10")

# section -> key -> expected kind: NUMBER, TEXT, or a nested mapping of the same form.
SCHEMA: dict[str, dict[str, Any]] = {
    "meta": {
        "machine": TEXT,
        "cpu": TEXT,
        "cores": NUMBER,
        "host_compiler": TEXT,
        "arm_compiler": TEXT,
        "task": TEXT,
        "model_sha256": TEXT,
        "wall_s": NUMBER,
    },
    "backbone": {
        "host_us_ref": NUMBER,
        "host_us_tflm": NUMBER,
        "host_speedup": NUMBER,
        "m4_instructions": NUMBER,
        "macs": NUMBER,
        "m4_instr_per_mac": NUMBER,
        "m4_instr_floor": NUMBER,
        "m4_kernel_best_instr_per_mac": NUMBER,
        "ram_ref_bytes": NUMBER,
        "tflm_arena_bytes": NUMBER,
        "ram_ratio": NUMBER,
        "flash_bytes": NUMBER,
    },
    "head": {
        "m4_instr_per_example": dict.fromkeys(SIZES, NUMBER),
        "m4_instr_per_epoch": dict.fromkeys(SIZES, NUMBER),
        "buffer_ram_bytes": NUMBER,
    },
    "firmware": {
        "qemu_text": NUMBER,
        "qemu_data": NUMBER,
        "qemu_bss": NUMBER,
    },
    "link": {
        "update_bytes": NUMBER,
        "model_bytes": NUMBER,
        "update_s_115200": NUMBER,
        "update_s_921600": NUMBER,
        "model_s_115200": NUMBER,
        "model_s_921600": NUMBER,
        "round_transfer_s_host": NUMBER,
        "round_transfer_s_qemu": NUMBER,
    },
    "aggregator": {
        "updates_per_s": {"64x7": NUMBER, "256x10": NUMBER},
        "round_s_32_host_devices": NUMBER,
    },
    "demo": {
        "phases_s": NUMBER,  # mapping phase name -> seconds; checked as numbers below
    },
    "secagg": {
        "head": TEXT,
        "bytes": {
            cohort: {
                "modulus_bits": NUMBER,
                "masked_update_bytes": NUMBER,
                "secagg_up_bytes": NUMBER,
                "secagg_down_bytes": NUMBER,
                "plain_update_bytes": NUMBER,
                "plain_up_bytes": NUMBER,
            }
            for cohort in ("cohort_10", "cohort_100")
        },
        "m4_instructions_cohort_10": dict.fromkeys(
            (
                "x25519_public",
                "x25519_shared",
                "hkdf",
                "seal_share",
                "open_share",
                "split",
                "mask",
                "pack",
                "round_total",
            ),
            NUMBER,
        ),
        "qemu_round": {"boards": NUMBER, "round_s": NUMBER, "port_bytes_per_device": NUMBER},
    },
    "privacy": {
        "m4_instr_privatize_64x7": NUMBER,
        "m4_instr_privatize_64x7_no_noise": NUMBER,
        "m4_instr_per_rounding_attempt_64x7": NUMBER,
    },
}


def _check_value(path: str, kind: Any, value: Any, problems: list[str]) -> None:
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key, sub in kind.items():
            if key not in value:
                problems.append(f"{path}.{key}: missing")
            else:
                _check_value(f"{path}.{key}", sub, value[key], problems)
    elif kind == NUMBER:
        numbers = value.values() if isinstance(value, dict) else [value]
        for number in numbers:
            if isinstance(number, bool) or not isinstance(number, int | float):
                problems.append(f"{path}: expected a number, got {number!r}")
            elif not math.isfinite(number):
                problems.append(f"{path}: not finite ({number})")
    elif kind == TEXT and not (isinstance(value, str) and value):
        problems.append(f"{path}: expected non-empty text, got {value!r}")


def validate(report: dict[str, Any]) -> list[str]:
    """Problems with a bench report; an empty list means it matches SCHEMA."""
    problems: list[str] = []
    for section, keys in SCHEMA.items():
        if section not in report:
            problems.append(f"{section}: missing section")
            continue
        _check_value(section, keys, report[section], problems)
    return problems
