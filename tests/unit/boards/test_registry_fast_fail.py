"""Real-board builds need PlatformIO's registry the first time; without it they must fail fast.

Runs the real `invoke build-flash --board esp32` in a subprocess with an empty PlatformIO core
directory (so no espressif32 platform is installed) and the registry declared unreachable
(FEDHEAD_REGISTRY_OFFLINE=1: tests never contact it), so the command must stop with the
explanation instead of starting a download.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import boards

ROOT = Path(__file__).resolve().parents[3]


def test_esp32_build_flash_without_registry_fails_fast_with_explanation(tmp_path: Path) -> None:
    env = {**boards.pio_env(), "PLATFORMIO_CORE_DIR": str(tmp_path / "core"),
           boards.OFFLINE_ENV: "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "build-flash", "--board", "esp32"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "registry" in result.stderr and "first esp32 build downloads" in result.stderr
    assert "--board host" in result.stderr  # says what to do instead
    # PlatformIO's own download attempt stalls ~60 s here; the check answers long before that.
    assert elapsed < 20, f"took {elapsed:.1f} s"


def test_unknown_board_is_named_with_the_choices() -> None:
    with pytest.raises(boards.BoardError, match=r"unknown board 'esp8266'.*host, qemu_m4"):
        boards.board("esp8266")


def test_virtual_boards_refuse_upload_and_say_how_to_start_them() -> None:
    with pytest.raises(boards.BoardError, match=r"virtual.*`invoke flash --board host` starts it"):
        boards.upload("host", None)
