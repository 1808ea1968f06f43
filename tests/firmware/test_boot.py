"""Start-up as a real board does it, on the host firmware (ASan/UBSan): ROM-like text first,
then a slow boot during which the host already sends HELLO. The host waits for the device
(DeviceClient.wait_ready), input sent early is answered once the device is ready, and after
boot every byte on the link is a frame: the port's own diagnostics are LOG frames (the same
ports/common/link_log path the ESP32 port uses for ESP-IDF and TFLM text)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware.conftest import assert_clean_exit
from tests.support.cbuild import SANITIZER_ENV
from tests.support.unframed_text import panic_dump
from tools.fleet import VirtualDevice, start_host_device
from tools.link.client import DeviceClient
from tools.link.errors import LinkTimeoutError
from tools.link.frame import Frame, encode_frame
from tools.link.messages import MsgType

BOOT_DELAY_S = 1.5


@pytest.fixture
def slow_board(host_firmware: Path, tmp_path: Path) -> Iterator[VirtualDevice]:
    device = start_host_device(
        host_firmware,
        0x5107,
        tmp_path,
        env=SANITIZER_ENV,
        extra_args=["--boot-delay-ms", str(int(BOOT_DELAY_S * 1000))],
    )
    try:
        yield device
    finally:
        assert_clean_exit(device)


def test_host_waits_for_a_slow_board_and_early_hellos_do_no_harm(slow_board: VirtualDevice) -> None:
    unframed: list[bytes] = []
    logs: list[tuple[int, str]] = []
    started = time.monotonic()
    with DeviceClient.open(
        slow_board.url,
        on_unframed=unframed.append,
        on_log=lambda log, dev: logs.append((log.level, log.text.decode())),
    ) as client:
        info = client.wait_ready(within=15)
        waited = time.monotonic() - started
        assert info.board_name == "host"
        assert client.device_id == 0x5107
        assert waited >= BOOT_DELAY_S * 0.9  # it really waited for the boot, not a stale answer
        assert client.counters.retries >= 2  # HELLOs were sent while the board was starting
        client.hello()  # and the link works normally afterwards
        stats = client.stats()
        # The HELLOs that arrived before the device was ready were buffered and answered.
        assert stats.frames_ok >= client.counters.retries
        client.timeout = 1.0
        client.hello()
    text = b"".join(unframed)
    assert text.startswith(b"fedhead-host boot: ROM banner")  # shown, not mistaken for frames
    # The port's diagnostic during boot could not be sent: dropped, counted, reported.
    assert logs and logs[0] == (2, "link_log: 1 log texts dropped before the link was ready")


def test_after_boot_every_byte_is_a_frame_and_port_diagnostics_are_log_frames(
    slow_board: VirtualDevice,
) -> None:
    unframed: list[bytes] = []
    logs: list[str] = []
    with DeviceClient.open(
        slow_board.url,
        on_unframed=unframed.append,
        on_log=lambda log, dev: logs.append(log.text.decode()),
    ) as client:
        client.wait_ready(within=15)
        boot_text = b"".join(unframed)
        unframed.clear()
        info = client.reset(wait_boot=10)  # the host port logs "reset: restarting in place"
        assert info is not None
        client.hello()
    assert boot_text  # ROM text before the app: the only unframed bytes
    assert unframed == []
    assert "reset: restarting in place" in logs
    assert "reset: restarting in place" in slow_board.log_text()  # also on stderr


def test_garbage_and_cut_frames_during_boot_do_not_upset_the_device(
    slow_board: VirtualDevice,
) -> None:
    """Bytes at any moment of the boot: noise, a panic dump's worth of text, half a frame."""
    rng = random.Random(14)
    with DeviceClient.open(slow_board.url) as client:
        for burst in range(6):  # spread over the first ~1.2 s of a 1.5 s boot
            noise = rng.randbytes(700) + panic_dump(300)
            half_hello = encode_frame(Frame(MsgType.HELLO, b"", 0xFFFFFFFF, 900 + burst))[:5]
            client.transport.write(noise + half_hello)
            time.sleep(0.2)
        info = client.wait_ready(within=15)
        assert info.board_name == "host"
        stats = client.stats()
        assert stats.bad_cobs + stats.bad_crc + stats.oversize >= 1  # the noise was seen
        assert client.hello().board_name == "host"  # and the link is clean again


def test_nacks_for_earlier_noise_do_not_use_up_a_requests_retries(
    host_device: VirtualDevice,
) -> None:
    """50 damaged frames on the line, then a request allowed one retry: the 50 NACKs (ack_seq
    0) come before its reply, and the client waits for the reply instead of resending 50 times."""
    with DeviceClient.open(host_device.url, retries=1) as client:
        client.wait_ready(within=10)
        client.transport.write(b"\x01\x02\x00" * 50)
        stats = client.stats()
        assert stats.bad_cobs >= 50
        assert client.counters.nacks >= 50 and client.counters.retries <= 1


def test_wait_ready_gives_up_with_advice_when_nothing_answers() -> None:
    master, slave = os.openpty()
    try:
        with DeviceClient.open(os.ttyname(slave)) as client:
            started = time.monotonic()
            with pytest.raises(LinkTimeoutError, match=r"no INFO within 1.2 s .*build-flash"):
                client.wait_ready(within=1.2)
            assert time.monotonic() - started < 3
            hellos = os.read(master, 4096).count(b"\x00")
            assert hellos >= 3  # retried with growing waits: 0.25 + 0.5 + rest
    finally:
        os.close(master)
        os.close(slave)
