"""The real-board commands without a real board: `invoke build-flash`'s port detection says
what to do when no board is plugged in, and `invoke hil --port P --board esp32` runs the HIL
suite against whatever answers on P. Here P is the production host firmware on a pty, started
like a real board that is still booting when the port opens (ROM text first, slow start): the
suite waits for it, runs the production-profile checks and skips the replay-only ones, saying
why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from serial.tools import list_ports

from tests.firmware.conftest import (  # noqa: F401 - fixtures
    assert_clean_exit,
    production_firmware,
)
from tests.support.cbuild import SANITIZER_ENV
from tools import boards
from tools.fleet import start_host_device

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(
    any(p.vid is not None or "USB" in p.device for p in list_ports.comports()),
    reason="a USB serial port is present on this machine",
)
def test_no_board_plugged_in_says_what_to_check() -> None:
    with pytest.raises(boards.BoardError) as err:
        boards.detect_port()
    message = str(err.value)
    assert "no board found" in message
    assert "data cable" in message and "dialout" in message
    assert "--port /dev/ttyUSB0" in message and "socket://" in message


def test_flashing_an_emulator_socket_says_how_to_test_it_instead() -> None:
    with pytest.raises(boards.BoardError, match=r"invoke hil --port socket://127.0.0.1:5555"):
        boards.upload("esp32", "socket://127.0.0.1:5555")


def test_invoke_hil_on_a_port_runs_the_production_checks_and_skips_replay_only(
    production_firmware: Path,  # noqa: F811 - the shared fixture: a production build, like a
    tmp_path: Path,  # real board's
) -> None:
    board = start_host_device(
        production_firmware,
        0x77,
        tmp_path,
        env=SANITIZER_ENV,
        extra_args=["--boot-delay-ms", "1000"],
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "hil", "--port", board.url, "--board", "esp32"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        assert_clean_exit(board)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "3 passed, 2 skipped" in out
    assert out.count("replay-only: a production build refuses SAMPLE/INFER") == 2


@pytest.mark.qemu
def test_invoke_hil_on_an_emulator_socket_with_the_replay_profile(tmp_path: Path) -> None:
    """An emulated board on socket:// (QEMU here, Espressif's ESP32 emulator on a real check),
    flashed with a replay build: every check runs, none is skipped."""
    from tests.support.firmware import build_qemu_firmware
    from tools.fleet import start_qemu_device

    board = start_qemu_device(build_qemu_firmware(), 0x78, tmp_path)
    try:
        assert board.url.startswith("socket://")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "invoke",
                "hil",
                "--port",
                board.url,
                "--board",
                "esp32",
                "--profile",
                "replay",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        assert_clean_exit(board)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "5 passed" in out and "skipped" not in out
