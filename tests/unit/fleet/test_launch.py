"""tools/fleet: every virtual device answers on its own port with its own id, and the
launchers stop every process they started, also when the body raises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cbuild import SANITIZER_ENV
from tests.support.firmware import build_host_firmware, build_qemu_firmware
from tools.fleet import VirtualDevice, host_fleet, qemu_fleet
from tools.link.client import DeviceClient


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _hello_all(devices: list[VirtualDevice]) -> list[int]:
    ids = []
    for device in devices:
        with DeviceClient.open(device.url) as client:
            client.hello()
            ids.append(client.device_id)
    return ids


def test_host_fleet_ids_ports_and_cleanup_on_error(tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="body failed"):  # noqa: SIM117 - the raise is the point
        with host_fleet(build_host_firmware("replay"), 3, first_id=100, state_dir=tmp_path,
                        env=SANITIZER_ENV) as devices:
            pids = [d.pid for d in devices]
            assert len({d.url for d in devices}) == 3
            assert _hello_all(devices) == [100, 101, 102]
            raise RuntimeError("body failed")
    assert pids and all(_gone(pid) for pid in pids)


@pytest.mark.qemu
def test_qemu_fleet_ids_ports_and_cleanup() -> None:
    with qemu_fleet(build_qemu_firmware(), 2, first_id=7) as devices:
        pids = [d.pid for d in devices]
        assert all(d.url.startswith("socket://127.0.0.1:") for d in devices)
        assert _hello_all(devices) == [7, 8]
    assert all(_gone(pid) for pid in pids)
