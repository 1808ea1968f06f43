"""Targets of the HIL suite: a flashed board on --port, or by default the virtual boards.

Virtual boards come from the firmware tests' fixtures (host firmware under ASan/UBSan whose
sanitizer log is checked at the end, and the QEMU Cortex-M4 image). A real board is opened by
its pyserial URL; it must run firmware generated from the model in build/model/watch. The
client waits for it to boot (opening the port resets many ESP32 dev boards). A real board runs
the production profile unless --profile replay says otherwise: checks that need the replay
profile (SAMPLE / INFER on host-supplied windows) are then skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.firmware.conftest import (  # noqa: F401 - fixtures shared with the firmware tests
    ReplayData,
    host_device,
    host_firmware,
    qemu_device,
    qemu_elf,
    replay,
)
from tools.fleet.entropy import provision_entropy
from tools.link.client import DeviceClient


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    port = metafunc.config.getoption("--port")
    if port:
        board = metafunc.config.getoption("--board")
        metafunc.parametrize("target", [f"{board}@{port}"], indirect=True)
    else:
        metafunc.parametrize("target", ["host", pytest.param("qemu", marks=pytest.mark.qemu)],
                             indirect=True)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> str:
    """"host", "qemu", or "<board>@<port>"; the virtual device is started on demand."""
    if request.param in ("host", "qemu"):
        request.getfixturevalue(f"{request.param}_device")
    return request.param


REAL_BOARDS_DEFAULT_PRODUCTION = ("esp32", "esp32s3")
BOOT_WAIT_S = 20.0


@pytest.fixture
def profile(target: str, request: pytest.FixtureRequest) -> str:
    """"production" or "replay": the build profile of the board under test."""
    chosen = request.config.getoption("--profile")
    if chosen:
        return chosen
    board = target.split("@", 1)[0]
    return "production" if board in REAL_BOARDS_DEFAULT_PRODUCTION else "replay"


@pytest.fixture
def replay_profile(profile: str) -> None:
    """Skips a check that feeds the device host-supplied sensor windows."""
    if profile != "replay":
        pytest.skip("replay-only: a production build refuses SAMPLE/INFER on host-supplied "
                    "windows (docs/PRIVACY.md); flash a replay build and pass --profile replay")


@pytest.fixture
def hil(target: str, request: pytest.FixtureRequest) -> Iterator[DeviceClient]:
    reference: ReplayData = request.getfixturevalue("replay")
    url = (target.split("@", 1)[1] if "@" in target
           else request.getfixturevalue(f"{target}_device").url)
    with DeviceClient.open(url, timeout=5.0) as client:
        info = client.wait_ready(within=BOOT_WAIT_S)
        if info.model_sha256 != reference.model_sha256:
            pytest.fail(f"the board on {url} runs another model than build/model/watch: "
                        "flash it with `invoke build-flash --board … --profile replay` first")
        provision_entropy(client)  # QEMU has no entropy source (test-only seed)
        client.install_head(reference.w, reference.b, version=1)  # a known starting point
        client.clear()
        yield client
