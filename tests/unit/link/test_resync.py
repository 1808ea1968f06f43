"""The host decoder recovers from any amount of unframed text between frames: ROM boot text,
ESP-IDF log lines and panic dumps longer than a frame, with and without 0x00 bytes, with or
without a delimiter before the next frame, delivered in arbitrary pieces."""

from __future__ import annotations

import random

import pytest

from tests.support.unframed_text import LOG_LINES, ROM_BOOT, panic_dump, with_zero_bytes
from tools.link.frame import MAX_ENCODED, Frame, StreamDecoder, encode_frame

FRAMES = [
    Frame(2, bytes(range(40)), 7, 1),
    Frame(6, b"\x02training", 7, 2),
    Frame(9, bytes(2000), 7, 3),
]


def _feed_in_pieces(decoder: StreamDecoder, stream: bytes, seed: int) -> list[Frame]:
    rng = random.Random(seed)
    frames: list[Frame] = []
    at = 0
    while at < len(stream):
        step = rng.choice([1, 3, 64, 300, 4096])
        frames += decoder.feed(stream[at : at + step])
        decoder.flush_unframed()  # what the monitor does after every read
        at += step
    return frames


@pytest.mark.parametrize("leading_delimiter", [True, False])
@pytest.mark.parametrize("zeros", [False, True])
def test_frames_survive_rom_text_logs_and_long_panic_dumps(
    leading_delimiter: bool, zeros: bool
) -> None:
    dump = panic_dump()
    assert len(dump) > 2 * MAX_ENCODED
    noise = [ROM_BOOT, LOG_LINES, with_zero_bytes(dump) if zeros else dump]
    lead = b"\x00" if leading_delimiter else b""
    stream = b"".join(text + lead + encode_frame(f) for text, f in zip(noise, FRAMES, strict=True))
    for seed in range(5):
        shown: list[bytes] = []
        decoder = StreamDecoder(on_unframed=shown.append)
        assert _feed_in_pieces(decoder, stream, seed) == FRAMES
        assert decoder.stats.frames_ok == 3
        if not zeros:  # every byte of text reaches the monitor, in order, exactly once
            assert b"".join(shown) == ROM_BOOT + LOG_LINES + dump


def test_text_shows_while_it_streams_not_only_at_the_next_delimiter() -> None:
    shown: list[bytes] = []
    decoder = StreamDecoder(on_unframed=shown.append)
    dump = panic_dump(10 * MAX_ENCODED)
    for at in range(0, len(dump), 256):
        decoder.feed(dump[at : at + 256])
    # Without a single 0x00, all but the last frame's worth has been handed over already.
    assert len(b"".join(shown)) >= len(dump) - MAX_ENCODED
    assert decoder.pending() == dump[-len(decoder.pending()) :]


def test_endless_text_keeps_memory_bounded_and_next_frame_decodes() -> None:
    decoder = StreamDecoder()
    line = b"E (1234) task_wdt: Task watchdog got triggered.\r\n"
    for _ in range(2000):  # ~100 kB without a delimiter
        assert decoder.feed(line) == []
        assert len(decoder.pending()) <= MAX_ENCODED
    assert decoder.feed(encode_frame(FRAMES[0])) == [FRAMES[0]]
    assert decoder.stats.oversize == 1  # one over-long block, counted once


def test_hostile_text_full_of_false_frame_starts_stays_cheap() -> None:
    decoder = StreamDecoder()
    hostile = b"\x03\x01" * MAX_ENCODED  # every other byte looks like a frame start
    assert decoder.feed(hostile + b"\x00" + encode_frame(FRAMES[1])) == [FRAMES[1]]
