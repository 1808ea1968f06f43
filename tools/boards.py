"""Firmware builds and uploads through PlatformIO, one function per user action.

Boards map to platformio.ini environments, one per build profile (docs/ARCHITECTURE.md):
`production` (no define; the default, what a real board runs) and `replay` (SAMPLE/INFER on
host windows, SEED, seeded TRAIN: simulations, the demo, tests). Virtual boards (host, qemu_m4)
use project-local platforms and build offline; real boards (esp32, esp32s3) use PlatformIO's
registry platform, whose first build downloads a toolchain and ESP-IDF. We check that the
registry answers before starting such a build, so a machine without access fails in seconds
with a clear message instead of stalling in PlatformIO's retries.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIO = [sys.executable, "-m", "platformio"]


PROFILES = ("production", "replay")


@dataclass(frozen=True)
class Board:
    name: str
    envs: dict[str, str]  # profile -> platformio.ini environment
    virtual: bool
    registry_platform: str | None = None

    @property
    def default_profile(self) -> str:
        """production where the board has it; else its only profile (qemu_m4: replay)."""
        return "production" if "production" in self.envs else next(iter(self.envs))

    def env(self, profile: str | None = None) -> str:
        profile = profile or self.default_profile
        if profile not in PROFILES:
            raise BoardError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        if profile not in self.envs:
            why = " (QEMU has no entropy source)" if self.name == "qemu_m4" else ""
            raise BoardError(
                f"{self.name} has no {profile} build{why}: pass --profile "
                + " or --profile ".join(self.envs)
            )
        return self.envs[profile]

    def build_dir(self, profile: str | None = None) -> Path:
        return ROOT / ".pio" / "build" / self.env(profile)

    def firmware(self, profile: str | None = None) -> Path:
        name = "fedhead-host" if self.name == "host" else "firmware.elf"
        return self.build_dir(profile) / name


BOARDS = {
    "host": Board("host", {"production": "host", "replay": "host_replay"}, virtual=True),
    "qemu_m4": Board("qemu_m4", {"replay": "qemu_m4_replay"}, virtual=True),
    "esp32": Board(
        "esp32",
        {"production": "esp32", "replay": "esp32_replay"},
        virtual=False,
        registry_platform="espressif32",
    ),
    "esp32s3": Board(
        "esp32s3", {"production": "esp32s3"}, virtual=False, registry_platform="espressif32"
    ),
    # the replay profile on an ESP32, for the emulator HIL only (= esp32 --profile replay)
    "esp32_replay": Board(
        "esp32_replay", {"replay": "esp32_replay"}, virtual=False, registry_platform="espressif32"
    ),
}


class BoardError(RuntimeError):
    """A build or upload cannot go on; the message says what to do."""


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None


def pio_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PLATFORMIO_DISABLE_UPGRADE_CHECK", "true")
    env.setdefault("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "false")
    env.setdefault("PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL", "3650")
    return env


def _core_dir() -> Path:
    return Path(os.environ.get("PLATFORMIO_CORE_DIR", Path.home() / ".platformio"))


# Set to 1 to declare the registry unreachable without trying it (tests and CI never touch it).
OFFLINE_ENV = "FEDHEAD_REGISTRY_OFFLINE"


def registry_reachable(timeout_s: float = 3.0) -> bool:
    """True when one of PlatformIO's registry hosts accepts a TCP connection on 443."""
    from platformio import __registry_mirror_hosts__

    if os.environ.get(OFFLINE_ENV) == "1":
        return False

    for host in __registry_mirror_hosts__:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


def ensure_registry_platform(b: Board) -> None:
    """Fail fast when a registry platform is neither installed nor downloadable."""
    if b.registry_platform is None:
        return
    if (_core_dir() / "platforms" / b.registry_platform).is_dir():
        return
    if registry_reachable():
        return
    raise BoardError(
        f"The first {b.name} build downloads the {b.registry_platform} platform, the Xtensa "
        "toolchain and ESP-IDF (with the esp-tflite-micro component) from PlatformIO's "
        "registry, and the registry cannot be reached from this machine.\n"
        f"Run `invoke build --board {b.name}` once on a machine with internet access (the "
        f"downloads are cached in {_core_dir()}), or build for a virtual board: "
        "`invoke build --board host` or `--board qemu_m4 --profile replay`."
    )


def run_pio(args: list[str]) -> None:
    cmd = [*PIO, *args]
    print("$ pio " + " ".join(args), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=pio_env())
    if result.returncode != 0:
        raise BoardError(f"`pio {' '.join(args)}` failed (exit {result.returncode}); see above")


def build(name: str, verbose: bool = False, profile: str | None = None) -> Path:
    """Build the firmware of a board in a profile (default: production where the board has
    one) and return the path of the image."""
    b = board(name)
    env = b.env(profile)
    ensure_registry_platform(b)
    run_pio(["run", "-e", env, *(["-v"] if verbose else [])])
    image = b.firmware(profile)
    if not image.exists():
        raise BoardError(f"build finished but {image} is missing")
    return image


# USB-serial bridges found on ESP32 boards: Silicon Labs CP210x, WCH CH340/CH9102, FTDI, and
# Espressif's own USB-Serial-JTAG (ESP32-S3/C3 native USB).
ESP_USB_VIDS = {0x10C4: "CP210x", 0x1A86: "CH340/CH9102", 0x0403: "FTDI", 0x303A: "Espressif USB"}

NO_BOARD_ADVICE = (
    "no board found on a USB serial port. Check that:\n"
    "  - the board is plugged in with a data cable (many USB cables only charge);\n"
    "  - the USB-serial driver is present (CP210x or CH340: `dmesg | tail` shows ttyUSB*/ttyACM*"
    " when it is);\n"
    "  - you may open the port (Linux: `sudo usermod -aG dialout $USER`, then log in again);\n"
    "then run the command again, or name the port: --port /dev/ttyUSB0 (Windows: --port COM3; "
    "an emulator: --port socket://127.0.0.1:5555)."
)


def detect_port() -> str:
    """The one serial port that looks like a board; an error says what to do otherwise."""
    from serial.tools import list_ports

    ports = [p for p in list_ports.comports() if p.vid is not None or "USB" in p.device]
    esp = [p for p in ports if p.vid in ESP_USB_VIDS]
    candidates = esp or ports
    if len(candidates) == 1:
        return candidates[0].device
    if not candidates:
        raise BoardError(NO_BOARD_ADVICE)
    names = ", ".join(
        f"{p.device} ({ESP_USB_VIDS.get(p.vid, p.description or 'unknown')})" for p in candidates
    )
    raise BoardError(f"several serial ports could be the board: {names}; pass --port")


def run_virtual(
    name: str, device_id: int = 1, profile: str | None = None, sensor: Path | None = None
) -> None:
    """Start a virtual board from its built image, print its port, keep it up until Ctrl-C.
    sensor: the host board's sensor file (labelled windows it collects at boot)."""
    from tools.fleet.launch import start_host_device, start_qemu_device

    b = board(name)
    profile = profile or b.default_profile
    image = b.firmware(profile)
    if not image.exists():
        raise BoardError(
            f"{image} is missing: run `invoke build --board {name} --profile {profile}` first"
        )
    logs = Path(tempfile.mkdtemp(prefix=f"fedhead-{name}-"))
    if name == "host":
        device = start_host_device(image, device_id, logs, sensor_path=sensor)
    elif sensor is not None:
        raise BoardError("only the host board reads a sensor file; qemu_m4 takes SAMPLE frames")
    else:
        device = start_qemu_device(image, device_id, logs)
    print(f"{name} board running (pid {device.pid}) on {device.url}")
    print(f"  monitor: invoke monitor --port {device.url}    log: {logs}")
    print("  Ctrl-C stops it")
    # SIGTERM (e.g. from `timeout`) must also reach the finally below that stops the board.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while device.alive():
            time.sleep(0.5)
        print(f"{name} board exited; log:\n{device.log_text()[-2000:]}")
    finally:
        with contextlib.suppress(Exception):
            device.stop()


def upload(name: str, port: str | None, profile: str | None = None) -> str:
    """Upload the built firmware to a real board; returns the port used."""
    b = board(name)
    if b.virtual:
        raise BoardError(
            f"{name} is a virtual board: there is nothing to upload. `invoke flash --board "
            f"{name}` starts it instead and prints its port."
        )
    if port and "://" in port:
        raise BoardError(
            f"{port} is a network port (an emulator?): esptool flashes over a serial port only. "
            f"For an emulator, build with `invoke build --board {name}`, start the emulator "
            f"with the image from {b.build_dir(profile)}, then test it with "
            f"`invoke hil --port {port} --board {name}`."
        )
    ensure_registry_platform(b)
    port = port or detect_port()
    run_pio(["run", "-e", b.env(profile), "-t", "upload", "--upload-port", port])
    return port
