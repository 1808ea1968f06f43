"""Firmware image sections of the QEMU Cortex-M4 build, as arm-none-eabi-size reports them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tools import boards


def image_sections(elf: Path) -> dict[str, int]:
    """text / data / bss bytes of an ARM ELF (Berkeley format of arm-none-eabi-size)."""
    out = subprocess.run(
        ["arm-none-eabi-size", "--format=berkeley", str(elf)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def measure(task: str) -> dict[str, Any]:
    elf = boards.build("qemu_m4", profile="replay")
    sections = image_sections(elf)
    return {
        "qemu_text": sections["text"],
        "qemu_data": sections["data"],
        "qemu_bss": sections["bss"],
        "toolchain": "arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard "
                     "-mfpu=fpv4-sp-d16 -O2, newlib nano",
        "task": task,
    }
