"""Project-wide pytest options: where the hardware-in-the-loop suite (tests/hil) runs."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fedhead hardware-in-the-loop (tests/hil)")
    group.addoption("--port", default="",
                    help="pyserial URL of a flashed board (/dev/ttyUSB0, socket://…, rfc2217://…); "
                         "default: virtual boards (host process and QEMU)")
    group.addoption("--board", default="esp32",
                    help="the board behind --port (esp32, esp32s3, host, qemu_m4)")
    group.addoption("--profile", default="", choices=["", "production", "replay"],
                    help="build profile of the board behind --port; default: production for "
                         "esp32/esp32s3 (replay-only checks are skipped), replay otherwise")
