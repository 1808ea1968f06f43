"""COBS and frame round-trips, resynchronisation after garbage, error counters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.link.cobs import CobsError, cobs_decode, cobs_encode, max_encoded_len
from tools.link.frame import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    StreamDecoder,
    decode_frame,
    encode_frame,
)


@given(st.binary(max_size=3000))
def test_cobs_round_trip_has_no_zero_and_respects_bound(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= max_encoded_len(len(data))
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("size", [253, 254, 255, 508, 509])
def test_cobs_block_boundaries(size: int) -> None:
    for fill in (b"\x01", b"\x00"):
        data = fill * size
        assert cobs_decode(cobs_encode(data)) == data


def test_cobs_rejects_truncated_block() -> None:
    with pytest.raises(CobsError):
        cobs_decode(b"\x05ab")


frames = st.builds(
    Frame,
    type=st.integers(0, 255),
    payload=st.binary(max_size=MAX_PAYLOAD),
    device_id=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 0xFFFF),
    flags=st.sampled_from([0, 1]),
)


@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    wire = encode_frame(frame)
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    assert decode_frame(wire) == frame


def test_bad_crc_and_version_are_named() -> None:
    wire = bytearray(encode_frame(Frame(1, b"hello", 3, 4)))
    wire[-3] ^= 0x10
    with pytest.raises(FrameError) as err:
        decode_frame(bytes(wire))
    assert err.value.kind in ("bad_crc", "bad_cobs")
    with pytest.raises(FrameError) as err:
        decode_frame(encode_frame(Frame(1, b"", version=PROTOCOL_VERSION + 1)))
    assert err.value.kind == "bad_version"


def test_stream_skips_garbage_and_hands_it_over() -> None:
    unframed: list[bytes] = []
    decoder = StreamDecoder(on_unframed=unframed.append)
    a, b = Frame(3, b"\x01log line", 9, 1), Frame(2, bytes(range(256)) * 3, 9, 2)
    stream = b"\x00boot text\r\n\x00" + encode_frame(a) + b"\xff\xfe junk\x00" + encode_frame(b)
    got: list[Frame] = []
    for i in range(0, len(stream), 7):  # arbitrary chunking, as a UART delivers it
        got += decoder.feed(stream[i : i + 7])
    assert got == [a, b]
    assert unframed == [b"boot text\r\n", b"\xff\xfe junk"]
    assert decoder.stats.frames_ok == 2


def test_frame_right_after_text_without_delimiter_survives() -> None:
    unframed: list[bytes] = []
    decoder = StreamDecoder(on_unframed=unframed.append)
    frame = Frame(2, b"info", 5, 1)
    assert decoder.feed(b"I (31) boot: ESP-IDF v5\r\n" + encode_frame(frame)) == [frame]
    assert unframed == [b"I (31) boot: ESP-IDF v5\r\n"]


def test_oversize_is_dropped_until_next_delimiter() -> None:
    decoder = StreamDecoder()
    frame = Frame(2, b"ok", 1, 1)
    got = decoder.feed(b"\x01" * 5000 + b"\x00" + encode_frame(frame))
    assert got == [frame]
    assert decoder.stats.oversize == 1


def test_corrupted_frame_counted_and_next_one_decodes() -> None:
    decoder = StreamDecoder()
    good = encode_frame(Frame(2, b"abc", 1, 1))
    bad = bytearray(good)
    bad[5] ^= 0x40
    assert decoder.feed(bytes(bad) + good) == [Frame(2, b"abc", 1, 1)]
    assert decoder.stats.bad_crc + decoder.stats.bad_cobs == 1


@pytest.mark.parametrize(("flags", "key_id"), [(0x04, 0), (0x80, 0), (0x01, 3)])
def test_reserved_header_bits_are_refused_and_counted(flags: int, key_id: int) -> None:
    wire = encode_frame(Frame(0x01, b"", 5, 9, flags, key_id))
    with pytest.raises(FrameError) as info:
        decode_frame(wire)
    assert info.value.kind == "bad_cobs"
    decoder = StreamDecoder()
    assert decoder.feed(wire + encode_frame(Frame(0x01, b"", 5, 10))) == [Frame(0x01, b"", 5, 10)]
    assert decoder.stats.bad_cobs == 1


def test_key_id_with_auth_is_a_frame() -> None:
    frame = Frame(0x01, b"", 5, 9, 0x02, 3, auth=bytes(24))
    assert decode_frame(encode_frame(frame)) == frame
