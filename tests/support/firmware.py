"""Build the host and QEMU firmware for tests from the same sources PlatformIO compiles.

The product builds go through platformio.ini (envs host, host_replay, qemu_m4_replay). Tests
build here instead so that the host firmware runs under ASan/UBSan (through cbuild, like every C
test) and so that a test session needs no PlatformIO. Both builds take the source list from
`firmware_sources`. Each caller names the profile it needs: "production" (no define: what real
boards run) or "replay" (SAMPLE/INFER on host windows, SEED, seeded TRAIN; simulations).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cbuild import CACHE, REPO, SANITIZER_ENV, build_c_program
from tests.support.third_party import crypto_include_dirs
from tools.fleet import VirtualDevice, start_host_device, write_sensor_file

FIRMWARE = REPO / "firmware"
TASK = "watch"
PROFILE_DEFINES: dict[str, tuple[str, ...]] = {
    "production": (),
    "replay": ("FEDHEAD_PROFILE_REPLAY=1",),
}
# Head training is compared bit for bit with tools/fedref: no fused multiply-add contraction.
COMMON_FLAGS = ("-ffp-contract=off",)
ARM_FLAGS = (
    "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
    "-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
    "-ffunction-sections", "-fdata-sections",
)
ARM_LINK = (
    "--specs=nano.specs", "-u", "_printf_float", "-Wl,--gc-sections",
    f"-T{REPO / 'boards' / 'qemu_mps2' / 'mps2_an386.ld'}",
)


def generated_dir() -> Path:
    """build/generated/watch, emitted from the trained model when missing or stale."""
    from model_gen import paths

    folder = paths.generated_dir(TASK)
    if not (paths.model_dir(TASK) / paths.TFLITE_NAME).exists():
        pytest.fail(f"no trained model in {paths.model_dir(TASK)}: run `invoke train` first")
    # The generator itself skips the work when its inputs' hash is unchanged.
    subprocess.run([sys.executable, "-m", "model_gen.emit", "--task", TASK], cwd=REPO,
                   check=True, capture_output=True)
    return folder


def firmware_sources(port: str, generated: Path) -> tuple[list[Path], list[Path]]:
    """(sources, include dirs) of one port's firmware with the generated reference backbone."""
    sources = [
        *sorted((FIRMWARE / "lib" / "fedcore" / "src").glob("*.c")),
        *sorted((FIRMWARE / "lib" / "backbone_ref" / "src").glob("*.c")),
        *sorted((FIRMWARE / "ports" / "common").glob("*.c")),
        *sorted((FIRMWARE / "ports" / port).glob("*.c")),
        generated / "head_init.c",
        generated / "backbone_ref_model.c",
    ]
    includes = [
        FIRMWARE / "lib" / "fedcore" / "include",
        FIRMWARE / "lib" / "backbone_ref" / "include",
        generated,
        *crypto_include_dirs(),  # ports/common compiles Monocypher and libsodium's HKDF
    ]
    return sources, includes


def build_host_firmware(profile: str) -> Path:
    """The host firmware of a profile under ASan/UBSan (cached by content hash)."""
    sources, includes = firmware_sources("host", generated_dir())
    return build_c_program(f"fedhead-host-{profile}", sources, includes,
                           PROFILE_DEFINES[profile], COMMON_FLAGS)


def build_qemu_firmware() -> Path:
    """The mps2-an386 ELF, replay profile (QEMU has no entropy source: SEED provisions it),
    built with arm-none-eabi-gcc and newlib nano (cached)."""
    sources, includes = firmware_sources("qemu_mps2", generated_dir())
    flags = [*ARM_FLAGS, *COMMON_FLAGS, *(f"-D{d}" for d in PROFILE_DEFINES["replay"]),
             *(f"-I{i}" for i in includes)]
    digest = hashlib.sha256(" ".join([*flags, *ARM_LINK]).encode())
    for path in [*sources, *(h for i in includes for h in sorted(Path(i).rglob("*.h")))]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    out = CACHE / f"fedhead-qemu-{digest.hexdigest()[:16]}.elf"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    cmd = ["arm-none-eabi-gcc", *flags, *map(str, sources), *ARM_LINK, "-o", str(tmp),
           "-lm", "-lc", "-lnosys"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"QEMU firmware build failed:\n{' '.join(cmd)}\n{result.stderr}")
    tmp.replace(out)
    return out


def start_sensor_board(
    log_dir: Path, device_id: int, source_device: int, windows: int
) -> VirtualDevice:
    """A production host board under ASan/UBSan whose sensor holds the first `windows` labelled
    windows of watch device `source_device` (build/model/watch/devices.npz): how a production
    board gets examples without the link."""
    import numpy as np

    with np.load(REPO / "build" / "model" / TASK / "devices.npz") as data:
        rows = np.flatnonzero(data["device"] == source_device)[:windows]
        sensor = write_sensor_file(
            log_dir / f"sensor{device_id}.bin", data["x"][rows], data["y"][rows]
        )
    return start_host_device(
        build_host_firmware("production"), device_id, log_dir, env=SANITIZER_ENV,
        sensor_path=sensor,
    )  # fmt: skip
