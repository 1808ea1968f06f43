"""fedcore's C framing (cobs, crc32, sha256, link) against Python: zlib, hashlib, tools/link."""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.cbuild import REPO, build_c_program, run_c_program
from tests.support.unframed_text import LOG_LINES, ROM_BOOT, panic_dump, with_zero_bytes
from tools.link import frame as pyframe
from tools.link.cobs import cobs_decode, cobs_encode
from tools.link.messages import MsgType, NackCode

FEDCORE = REPO / "firmware" / "lib" / "fedcore"
SOURCES = [FEDCORE / "src" / f"{name}.c" for name in ("cobs", "crc32", "sha256", "link")]
DRIVER = Path(__file__).with_name("link_driver.c")
PROTOCOL_H = FEDCORE / "include" / "fedcore" / "protocol.h"


@pytest.fixture(scope="module")
def driver() -> Path:
    return build_c_program("link_driver", [DRIVER, *SOURCES], [FEDCORE / "include"])


def run(driver: Path, *args: str, data: bytes = b"") -> bytes:
    return run_c_program(driver, args, stdin=data)


def _tagged(out: bytes) -> bytes | None:
    """Driver answers 'K' + bytes on success, 'E' when the C code refused the input."""
    assert out[:1] in (b"K", b"E"), out[:40]
    return out[1:] if out[:1] == b"K" else None


BOUNDARY_LENGTHS = [0, 1, 253, 254, 255, 507, 508, 509, 2088]


@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
@pytest.mark.parametrize("fill", ["zeros", "nonzero", "random"])
def test_cobs_matches_python_at_block_boundaries(driver: Path, length: int, fill: str) -> None:
    rng = random.Random(length)
    data = {
        "zeros": bytes(length),
        "nonzero": bytes(rng.randrange(1, 256) for _ in range(length)),
        "random": bytes(rng.randrange(0, 256) for _ in range(length)),
    }[fill]
    encoded = _tagged(run(driver, "cobs_encode", data=data))
    assert encoded == cobs_encode(data)
    assert 0 not in encoded
    assert _tagged(run(driver, "cobs_decode", data=encoded)) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=700))
def test_cobs_round_trip_any_bytes(driver: Path, data: bytes) -> None:
    encoded = _tagged(run(driver, "cobs_encode", data=data))
    assert encoded == cobs_encode(data)
    assert _tagged(run(driver, "cobs_decode", data=encoded)) == data


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300))
def test_cobs_decode_agrees_on_arbitrary_input(driver: Path, data: bytes) -> None:
    """Garbage decodes in C exactly when it decodes in Python, to the same bytes."""
    try:
        expected: bytes | None = cobs_decode(data)
    except ValueError:
        expected = None
    assert _tagged(run(driver, "cobs_decode", data=data)) == expected


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 63, 64, 1000, 65536])
def test_crc32_matches_zlib(driver: Path, length: int) -> None:
    data = random.Random(length).randbytes(length)
    assert int(run(driver, "crc32", data=data), 16) == zlib.crc32(data)


@pytest.mark.parametrize("length", [0, 3, 55, 56, 63, 64, 65, 119, 120, 1000, 100_000])
@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_sha256_matches_hashlib(driver: Path, length: int, chunk: int) -> None:
    data = random.Random(length * 31 + chunk).randbytes(length)
    assert run(driver, "sha256", str(chunk), data=data).decode().strip() == (
        hashlib.sha256(data).hexdigest()
    )


def _c_build(driver: Path, payload: bytes, msg_type: int, seq: int, device: int,
             flags: int = 0) -> bytes | None:
    out = run(driver, "build", str(msg_type), str(seq), str(device), str(flags), data=payload)
    return _tagged(out)


@pytest.mark.parametrize("length", [0, 1, 254, 1024, 2048])
def test_c_frames_decode_in_python(driver: Path, length: int) -> None:
    payload = random.Random(length).randbytes(length)
    wire = _c_build(driver, payload, 0x22, 0xBEEF, 0x12345678, pyframe.FLAG_REPLY)
    assert wire is not None and wire[0] == 0 and wire[-1] == 0
    frame = pyframe.decode_frame(wire[1:])
    assert (frame.type, frame.seq, frame.device_id, frame.flags, frame.payload) == (
        0x22, 0xBEEF, 0x12345678, pyframe.FLAG_REPLY, payload
    )
    expected = pyframe.encode_frame(pyframe.Frame(0x22, payload, 0x12345678, 0xBEEF,
                                                  pyframe.FLAG_REPLY))
    assert wire[1:] == expected


def test_build_refuses_oversize_payload_and_never_sets_auth(driver: Path) -> None:
    assert _c_build(driver, bytes(pyframe.MAX_PAYLOAD + 1), 1, 0, 1) is None
    wire = _c_build(driver, b"x", 1, 0, 1, flags=pyframe.FLAG_AUTH | pyframe.FLAG_REPLY)
    assert wire is not None
    assert pyframe.decode_frame(wire[1:]).flags == pyframe.FLAG_REPLY


def _rx(driver: Path, stream: bytes) -> tuple[list[str], list[int]]:
    lines = run(driver, "rx", data=stream).decode().splitlines()
    counters = [int(x) for x in lines[-1].split()[1:]]
    return lines[:-1], counters


def _py_frame(payload: bytes, seq: int = 1, **kw: int) -> bytes:
    return pyframe.encode_frame(pyframe.Frame(0x01, payload, 7, seq, **kw))


def test_receiver_accepts_python_frames_among_garbage(driver: Path) -> None:
    good = [_py_frame(bytes([i]) * i, seq=i) for i in range(1, 6)]
    stream = b"ESP-ROM:esp32 boot text\r\n\x00" + good[0] + good[1] + b"\x00\x00" + good[2]
    stream += b"noise" + b"\x00" + good[3] + good[4]
    events, counters = _rx(driver, stream)
    frames = [e for e in events if e.startswith("frame")]
    assert [int(f.split()[2]) for f in frames] == [1, 2, 3, 4, 5]
    assert frames[2].split()[6] == "03" * 3
    assert counters == [5, 2, 0, 0, 0]  # ROM text and "noise" each end as one bad frame


def test_receiver_classifies_every_failure(driver: Path) -> None:
    raw = pyframe.frame_to_raw(pyframe.Frame(0x01, b"abc", 7, 9))
    bad_crc = cobs_encode(raw[:-1] + bytes([raw[-1] ^ 1])) + b"\x00"
    short = cobs_encode(raw[:10]) + b"\x00"
    v2 = pyframe.encode_frame(pyframe.Frame(0x01, b"", 7, 9, version=pyframe.PROTOCOL_VERSION + 1))
    lying_length = bytearray(raw[:-4])
    lying_length[10] = 200
    lying = cobs_encode(bytes(lying_length) + zlib.crc32(lying_length).to_bytes(4, "little"))
    oversize = b"\x01" * (pyframe.MAX_ENCODED + 5) + b"\x00"
    bad_cobs = b"\x05ab\x00"
    stream = bad_crc + short + v2 + lying + b"\x00" + oversize + bad_cobs + _py_frame(b"ok")
    events, counters = _rx(driver, stream)
    kinds = [e.split()[0] for e in events]
    assert kinds == ["bad_crc", "too_short", "bad_version", "bad_length", "oversize", "bad_cobs",
                     "frame"]
    assert counters == [1, 3, 1, 1, 1]


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000))
def test_receiver_survives_random_bytes_then_decodes(driver: Path, garbage: bytes) -> None:
    events, counters = _rx(driver, garbage + b"\x00" + _py_frame(b"after", seq=77))
    assert events[-1].startswith("frame 1 77 7 0 5")
    assert counters[0] >= 1


def _c_defines() -> dict[str, int]:
    pattern = r"#define (FC_\w+) (0x[0-9A-Fa-f]+|\d+)u"
    return {m[1]: int(m[2], 0) for m in re.finditer(pattern, PROTOCOL_H.read_text())}


def test_c_constants_match_python_names() -> None:
    defines = _c_defines()
    for msg in MsgType:
        assert defines[f"FC_MSG_{msg.name}"] == msg.value
    for code in NackCode:
        assert defines[f"FC_NACK_{code.name}"] == code.value
    c_msgs = {k for k in defines if k.startswith("FC_MSG_")}
    assert c_msgs == {f"FC_MSG_{m.name}" for m in MsgType}
    assert defines["FC_MAX_PAYLOAD"] == pyframe.MAX_PAYLOAD
    assert defines["FC_PROTO_VERSION"] == pyframe.PROTOCOL_VERSION


@pytest.mark.parametrize("zeros", [False, True])
def test_receiver_resynchronises_after_long_unframed_text(driver: Path, zeros: bool) -> None:
    """ROM text, log lines and a panic dump longer than the receive buffer: the frame after the
    next delimiter decodes; a frame glued to over-long text without a delimiter is lost (its
    start was dropped with the text) and the one after it decodes."""
    dump = panic_dump()
    assert len(dump) > pyframe.MAX_ENCODED
    noise = ROM_BOOT + LOG_LINES + (with_zero_bytes(dump) if zeros else dump)
    stream = noise + b"\x00" + _py_frame(b"one", seq=1) + noise + _py_frame(b"lost", seq=2)
    stream += _py_frame(b"three", seq=3)
    events, counters = _rx(driver, stream)
    frames = [int(e.split()[2]) for e in events if e.startswith("frame")]
    assert frames == [1, 3]
    assert counters[0] == 2
    assert counters[4] == (0 if zeros else 2)  # each over-long text block counted as oversize
