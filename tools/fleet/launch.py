"""Start and stop virtual devices (see the package docstring)."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The CONFIG word of boards/qemu_mps2/mps2_an386.ld that holds the device id.
QEMU_DEVICE_ID_ADDR = 0x203FFF00
QEMU_MACHINE = "mps2-an386"
PTY_LINE_PREFIX = "FEDHEAD_PTY "
QEMU_LISTENING = "waiting for connection"
STOP_GRACE_S = 5.0


class FleetError(RuntimeError):
    """A virtual device could not be started; the message says why (with its log)."""


@dataclass
class VirtualDevice:
    """One running virtual device: open `url` with pyserial / tools.link."""

    kind: str  # "host" or "qemu"
    device_id: int
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """What the process wrote to stderr (sanitizer reports, QEMU messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        """Terminate by PID (SIGTERM, then SIGKILL after a grace period); returns the exit code."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        return self.process.returncode


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """First stdout line of a starting process, or '' if it did not come within timeout."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return ""
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                return ""
            line += chunk
    return line.decode(errors="replace").strip()


def start_host_device(
    firmware: Path,
    device_id: int,
    log_dir: Path,
    state_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 10.0,
    extra_args: Sequence[str] = (),
    sensor_path: Path | None = None,
) -> VirtualDevice:
    """Start the host firmware; returns once it printed the pty it serves.

    `extra_args` go to the firmware as they are (e.g. `--boot-delay-ms 1500`).
    sensor_path: the host board's sensor (labelled windows the firmware collects at boot, see
    firmware/ports/host/main.c): how a production board gets examples without the link."""
    cmd = [str(firmware), "--id", str(device_id), *extra_args]
    if state_path is not None:
        cmd += ["--state", str(state_path)]
    if sensor_path is not None:
        cmd += ["--sensor", str(sensor_path)]
    log_path = Path(log_dir) / f"host-{device_id}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by VirtualDevice.stop
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log_file, env={**os.environ, **(env or {})}
    )
    device = VirtualDevice("host", device_id, "", process, log_path, log_file)
    line = _read_line(process, start_timeout)
    if not line.startswith(PTY_LINE_PREFIX):
        device.stop()
        raise FleetError(f"host firmware {firmware} did not announce its pty (got {line!r}):\n"
                         f"{device.log_text()[-2000:]}")
    device.url = line[len(PTY_LINE_PREFIX):]
    return device


def write_sensor_file(path: Path, windows: object, labels: object) -> Path:
    """The host board's sensor file: per example a u8 label then its int8 window."""
    import numpy as np

    rows = np.asarray(windows, dtype=np.int8).reshape(len(labels), -1)  # type: ignore[arg-type]
    with open(path, "wb") as f:
        for window, label in zip(rows, labels, strict=True):  # type: ignore[call-overload]
            f.write(bytes([int(label)]) + window.tobytes())
    return Path(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.02)
    return False


def qemu_command(elf: Path, port: int, device_id: int) -> list[str]:
    """The QEMU command line of one device (serial on a TCP server that waits for the host)."""
    return [
        "qemu-system-arm", "-M", QEMU_MACHINE, "-nographic", "-monitor", "none",
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
        "-kernel", str(elf),
        "-device", f"loader,addr={QEMU_DEVICE_ID_ADDR:#x},data={device_id},data-len=4",
    ]


def start_qemu_device(
    elf: Path, device_id: int, log_dir: Path, start_timeout: float = 10.0, attempts: int = 3
) -> VirtualDevice:
    """Start QEMU; returns once it listens. The guest boots when the host connects to `url`."""
    last_log = ""
    for _ in range(attempts):  # a free port can be taken between probing and QEMU's bind
        port = _free_port()
        log_path = Path(log_dir) / f"qemu-{device_id}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed by VirtualDevice.stop
        process = subprocess.Popen(
            qemu_command(elf, port, device_id),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
        )
        device = VirtualDevice("qemu", device_id, f"socket://127.0.0.1:{port}", process,
                               log_path, log_file)
        if _wait_for_text(log_path, QEMU_LISTENING, process, start_timeout):
            return device
        last_log = device.log_text()
        device.stop()
    raise FleetError(f"QEMU did not start with {elf}:\n{last_log[-2000:]}")


@contextlib.contextmanager
def _fleet(start, n: int, log_dir: Path | None) -> Iterator[list[VirtualDevice]]:
    devices: list[VirtualDevice] = []
    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-")))
        try:
            for index in range(n):
                devices.append(start(index, log_dir))
            yield devices
        finally:
            for device in devices:
                device.stop()


def host_fleet(
    firmware: Path,
    n: int,
    first_id: int = 1,
    state_dir: Path | None = None,
    log_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> contextlib.AbstractContextManager[list[VirtualDevice]]:
    """n host firmware processes with ids first_id.., each on its own pty.

    state_dir: persist each device's storage as state_dir/device-<id>.* (else RAM only).
    log_dir: keep each process's stderr there (else a temporary folder)."""

    def start(index: int, logs: Path) -> VirtualDevice:
        device_id = first_id + index
        state = Path(state_dir) / f"device-{device_id}" if state_dir is not None else None
        return start_host_device(Path(firmware), device_id, logs, state, env)

    return _fleet(start, n, log_dir)


def qemu_fleet(
    elf: Path, n: int, first_id: int = 1, log_dir: Path | None = None
) -> contextlib.AbstractContextManager[list[VirtualDevice]]:
    """n QEMU mps2-an386 instances with ids first_id.., each on socket://127.0.0.1:PORT."""

    def start(index: int, logs: Path) -> VirtualDevice:
        return start_qemu_device(Path(elf), first_id + index, logs)

    return _fleet(start, n, log_dir)
