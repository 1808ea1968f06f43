"""Fixtures: a Python protocol peer on a real pty, closed even when a test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.link.peer import PyPeer


@pytest.fixture
def peer() -> Iterator[PyPeer]:
    device = PyPeer().start()
    try:
        yield device
    finally:
        device.stop()
