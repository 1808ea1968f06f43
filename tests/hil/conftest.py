"""Targets of the HIL suite: a flashed board on --port, or by default the virtual boards.

Virtual boards come from the firmware tests' fixtures (host firmware under ASan/UBSan whose
sanitizer log is checked at the end, and the QEMU Cortex-M4 image). A real board is opened by
its pyserial URL; it must run firmware generated from the model in build/model/watch. The
client waits for it to boot (opening the port resets many ESP32 dev boards). A real board runs
the production profile unless --profile replay says otherwise: checks that need the replay
profile (SAMPLE / INFER on host-supplied windows) are then skipped with the reason.

The suite acts as the board's server: it enrolls the board with the key of its own aggregator
store (build/hil/aggregator.sqlite for a real board, made once; a fresh one for each virtual
board) and talks over the authenticated link, since a
production board takes MODEL/TRAIN only from its enrolled server. A real board enrolled with
another aggregator is refused (TOFU): re-enroll it with `invoke provision --force` right after
power-cycling it, or run the suite from that aggregator's store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware.conftest import (  # noqa: F401 - fixtures shared with the firmware tests
    ReplayData,
    host_device,
    host_firmware,
    qemu_device,
    qemu_elf,
    replay,
)
from tests.support.cbuild import REPO
from tools.aggregator.keys import EnrollmentError, KeyStore
from tools.aggregator.provision import provision_client
from tools.aggregator.store import Store
from tools.fleet.entropy import provision_entropy
from tools.link.client import DeviceClient

HIL_STORE = REPO / "build" / "hil" / "aggregator.sqlite"


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
        # A real board keeps the suite's key across runs; a virtual board is new every test.
        _enroll(client, url, HIL_STORE if "@" in target
                else request.getfixturevalue("tmp_path") / "aggregator.sqlite")
        client.install_head(reference.w, reference.b, version=1)  # a known starting point
        client.clear()
        yield client


def _enroll(client: DeviceClient, url: str, store_path: Path) -> None:
    """Enroll the board with the suite's aggregator key (idempotent) and start the link."""
    store = Store(store_path)
    try:
        # The suite's own store follows a re-flashed board (new device key) instead of
        # refusing it; the board is never forced: one enrolled elsewhere is refused.
        KeyStore(store.conn).forget_device(client.device_id)
        provision_client(client, store, force=False)
    except EnrollmentError as err:
        pytest.fail(f"{url}: {err}")
    finally:
        store.close()
