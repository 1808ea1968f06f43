"""Virtual devices for aggregator tests: Python protocol peers on real ptys (see
tests/unit/link/peer.py); the firmware-backed fleet test lives in test_fleet_e2e.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.link.peer import PyPeer


@pytest.fixture
def peers(request: pytest.FixtureRequest) -> Iterator[list[PyPeer]]:
    count = getattr(request, "param", 3)
    devices = [PyPeer(device_id=100 + i).start() for i in range(count)]
    try:
        yield devices
    finally:
        for device in devices:
            device.stop()
