"""Fixtures for device tests: firmware builds, virtual devices, replay data and references."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from model_gen import paths
from model_gen.embed import tflm_embeddings
from tests.support.cbuild import SANITIZER_ENV
from tests.support.firmware import TASK, build_host_firmware, build_qemu_firmware
from tools.fleet import VirtualDevice, start_host_device, start_qemu_device
from tools.link.client import DeviceClient

REPLAY_WINDOWS = 50
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


@dataclass(frozen=True)
class ReplayData:
    """One federated user's first windows, with the TFLM runtime's embeddings as the oracle."""

    windows: np.ndarray  # int8 (n, 600)
    labels: np.ndarray  # int (n,)
    embeddings: np.ndarray  # float32 (n, D), TFLM
    w: np.ndarray  # initial head, float32 (D, C)
    b: np.ndarray
    model_sha256: bytes


def perturbed_head(replay: ReplayData, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A head near the initial one that no device holds yet (for install tests)."""
    rng = np.random.default_rng(seed)
    w = (replay.w + rng.normal(0, 0.05, replay.w.shape)).astype(np.float32)
    b = (replay.b + rng.normal(0, 0.05, replay.b.shape)).astype(np.float32)
    return w, b


@pytest.fixture(scope="session")
def replay() -> ReplayData:
    folder = paths.model_dir(TASK)
    model = (folder / paths.TFLITE_NAME).read_bytes()
    devices = np.load(folder / paths.DEVICES_NAME)
    federated = [i for i, s in enumerate(devices["device_split"]) if s == "federated"]
    rows = np.flatnonzero((devices["device"] == federated[0]) & (devices["part"] == 0))
    rows = rows[:REPLAY_WINDOWS]
    windows = devices["x"][rows].reshape(len(rows), -1)
    head = np.load(folder / paths.HEAD_NAME)
    return ReplayData(
        windows=windows,
        labels=devices["y"][rows].astype(int),
        embeddings=tflm_embeddings(model, devices["x"][rows]),
        w=head["w"].astype(np.float32),
        b=head["b"].astype(np.float32),
        model_sha256=hashlib.sha256(model).digest(),
    )


@pytest.fixture(scope="session")
def host_firmware() -> Path:
    """The replay profile: SAMPLE/INFER on host windows, SEED, seeded TRAIN (simulation)."""
    return build_host_firmware("replay")


@pytest.fixture(scope="session")
def production_firmware() -> Path:
    """The production profile, what real boards run (no define)."""
    return build_host_firmware("production")


@pytest.fixture(scope="session")
def qemu_elf() -> Path:
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("qemu-system-arm and arm-none-eabi-gcc are required (./fedhead setup)")
    return build_qemu_firmware()


def assert_clean_exit(device: VirtualDevice) -> None:
    """The device survived the test and its sanitizers found nothing."""
    alive = device.alive()
    code = device.stop()
    log = device.log_text()
    found = [m for m in SANITIZER_MARKERS if m in log]
    assert alive, f"{device.kind} device {device.device_id} died (exit {code}):\n{log[-3000:]}"
    assert not found, f"sanitizer report in {device.log_path}:\n{log[-3000:]}"


@pytest.fixture
def host_device(host_firmware: Path, tmp_path: Path) -> Iterator[VirtualDevice]:
    device = start_host_device(host_firmware, 0x4242, tmp_path, tmp_path / "state",
                               env=SANITIZER_ENV)
    try:
        yield device
    finally:
        assert_clean_exit(device)


@pytest.fixture
def qemu_device(qemu_elf: Path, tmp_path: Path) -> Iterator[VirtualDevice]:
    device = start_qemu_device(qemu_elf, 0x5151, tmp_path)
    try:
        yield device
    finally:
        assert_clean_exit(device)


@pytest.fixture(params=["host", pytest.param("qemu", marks=pytest.mark.qemu)])
def device(request: pytest.FixtureRequest) -> VirtualDevice:
    """The same scenario on the host firmware (ASan/UBSan) and on QEMU."""
    return request.getfixturevalue(f"{request.param}_device")


@pytest.fixture
def client(device: VirtualDevice) -> Iterator[DeviceClient]:
    with DeviceClient.open(device.url, timeout=5.0) as c:
        yield c
