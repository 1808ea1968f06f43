"""Monitor rendering: frames become lines, boot text passes through, and the PlatformIO filter
loads through PlatformIO's own loader and shows the same."""

from __future__ import annotations

import os
from pathlib import Path

from tools.link import messages as m
from tools.link.frame import FLAG_REPLY, Frame, encode_frame
from tools.monitor.render import MonitorDecoder, render_frame

ROOT = Path(__file__).resolve().parents[3]
INFO = m.Info(0x0102, 1, b"esp32", b"\xab" * 32, b"\xcd" * 32, 2, 48, 7, 600, 3, 1000, 4, 64)


def _stream() -> bytes:
    log = Frame(m.MsgType.LOG, m.Log(1, b"round 3 trained").pack(), 7, 5)
    nack = Frame(m.MsgType.NACK, m.Nack(9, m.MsgType.TRAIN, m.NackCode.NO_DATA).pack(), 7, 9,
                 FLAG_REPLY)
    return (b"rst:0x1 (POWERON)\r\nboot: ok\r\n" + encode_frame(Frame(2, INFO.pack(), 7, 1))
            + encode_frame(log) + b"printf says hi\n" + b"\x00" + encode_frame(nack))


def test_render_lines() -> None:
    line = render_frame(Frame(2, INFO.pack(), 7, 1))
    assert line.startswith("[dev 0x00000007 #1 INFO] board=esp32 fw=1.2 D=48 C=7")
    assert "malformed payload" in render_frame(Frame(m.MsgType.TRAIN, b"\x01", 7, 2))


def test_monitor_shows_frames_and_passes_text_through_in_any_chunking() -> None:
    stream = _stream()
    for step in (1, 5, len(stream)):
        decoder = MonitorDecoder()
        out = "".join(decoder.feed(stream[i : i + step]) for i in range(0, len(stream), step))
        lines = out.splitlines()
        assert lines[:2] == ["rst:0x1 (POWERON)", "boot: ok"], step
        assert lines[2].startswith("[dev 0x00000007 #1 INFO] board=esp32")
        assert lines[3] == "[dev 0x00000007 #5 LOG] info: round 3 trained"
        assert lines[4] == "printf says hi"
        assert lines[5] == "[dev 0x00000007 #9 reply NACK] NO_DATA for #9 (TRAIN)"


def test_platformio_filter_loads_and_renders(monkeypatch) -> None:
    from platformio.device.monitor.filters.base import load_monitor_filters
    from serial.tools import miniterm

    monkeypatch.chdir(ROOT)
    os.environ.setdefault("PLATFORMIO_DISABLE_UPGRADE_CHECK", "true")
    load_monitor_filters(str(ROOT / "monitor"), prefix="filter_", options={"project_dir": ROOT})
    fedhead = miniterm.TRANSFORMATIONS["fedhead"]()
    text = fedhead.rx(_stream().decode("latin-1"))
    assert "[dev 0x00000007 #5 LOG] info: round 3 trained" in text
    assert text.startswith("rst:0x1 (POWERON)")
