"""Cortex-M4 cost of on-device head training, counted exactly under unicorn.

fedcore's head.c / examples.c / rng.c are built for Cortex-M4F (the QEMU board's flags) with
maxima D = 64, C = 10, and `fc_head_train` is run on N deterministic examples with E = 1 and
E = 2 epochs: the difference is one epoch (shuffle, forward, softmax, backward, SGD steps) with
the fixed set-up cost removed; per example = per epoch / N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from tools.bench.m4 import M4_FLAGS, M4Machine, build_m4_elf

ROOT = Path(__file__).resolve().parents[2]
FEDCORE = ROOT / "firmware" / "lib" / "fedcore"
SIZES = ((32, 7), (64, 7), (64, 10))
EXAMPLES = 64
BUFFERS = ("head", "examples", "workspace", "rng")


def _elf() -> Path:
    sources = [Path(__file__).with_name("head_m4.c"),
               *(FEDCORE / "src" / f"{name}.c" for name in ("head", "examples", "rng"))]
    flags = (*M4_FLAGS, "-ffp-contract=off", "-DFEDCORE_MAX_D=64", "-DFEDCORE_MAX_C=10")
    return build_m4_elf(sources, ROOT / "build" / "bench" / "head_m4.elf",
                        include_dirs=[FEDCORE / "include"],
                        keep=["bench_head_setup", "bench_head_train"], flags=flags,
                        libs=["-lm"])


def _train_instructions(elf: Path, d: int, c: int, epochs: int) -> int:
    machine = M4Machine(elf)
    if machine.call("bench_head_setup", d, c, EXAMPLES).return_value != 0:
        raise RuntimeError(f"bench_head_setup({d}, {c}) failed")
    result = machine.call("bench_head_train", epochs)
    if result.return_value != 0:
        raise RuntimeError(f"fc_head_train returned {result.return_value} for {d}x{c}")
    return result.instructions


def buffer_ram_bytes(elf: Path) -> int:
    """Static RAM of the training state (head, examples ring buffer, workspace, rng)."""
    with elf.open("rb") as f:
        symbols = ELFFile(f).get_section_by_name(".symtab")
        return sum(symbols.get_symbol_by_name(name)[0]["st_size"] for name in BUFFERS)


def measure(task: str = "watch") -> dict[str, Any]:
    elf = _elf()
    per_example, per_epoch = {}, {}
    for d, c in SIZES:
        one = _train_instructions(elf, d, c, 1)
        two = _train_instructions(elf, d, c, 2)
        per_epoch[f"{d}x{c}"] = two - one
        per_example[f"{d}x{c}"] = round((two - one) / EXAMPLES, 1)
    return {
        "m4_instr_per_example": per_example,
        "m4_instr_per_epoch": per_epoch,
        "buffer_ram_bytes": buffer_ram_bytes(elf),
        "examples_per_epoch": EXAMPLES,
        "batch": 8,
        "buffer_capacity_examples": 256,
        "emulator": "unicorn 2 (Cortex-M4, exact instruction count)",
        "compiler": "arm-none-eabi-gcc " + " ".join(M4_FLAGS) + " -ffp-contract=off",
        "maxima": "FEDCORE_MAX_D=64, FEDCORE_MAX_C=10",
    }
