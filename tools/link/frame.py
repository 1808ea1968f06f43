"""Frames (PROTOCOL.md §1): COBS(header | payload | [auth] | crc32) 0x00, and a streaming decoder.

The decoder is fed raw bytes as they arrive. Complete frames come out as `Frame` objects; bytes
that do not form a frame (boot text, printf output, noise) go to an `on_unframed` callback so a
monitor can show them, and each failure kind is counted like the firmware counts it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.link.cobs import CobsError, cobs_decode, cobs_encode, max_encoded_len

PROTOCOL_VERSION = 2
HEADER_SIZE = 12
AUTH_SIZE = 24
CRC_SIZE = 4
MAX_PAYLOAD = 2048
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + AUTH_SIZE + CRC_SIZE
MAX_ENCODED = max_encoded_len(MAX_FRAME)
BROADCAST_DEVICE = 0xFFFFFFFF
# Frame starts tried inside one block of text (see _frame_after_text).
MAX_FRAME_CANDIDATES = 32

FLAG_REPLY = 0x01
FLAG_AUTH = 0x02
FLAG_RESERVED_MASK = 0xFC  # must be zero: such frames are refused (counted as bad_cobs)

_HEADER = struct.Struct("<BBBBIHH")


class FrameError(ValueError):
    """A byte block is not a valid frame; `kind` names the counter it belongs to."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Frame:
    """One decoded frame: header fields and payload (auth block kept raw when present)."""

    type: int
    payload: bytes = b""
    device_id: int = BROADCAST_DEVICE
    seq: int = 0
    flags: int = 0
    key_id: int = 0
    version: int = PROTOCOL_VERSION
    auth: bytes = b""

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)


def crc32(data: bytes) -> int:
    """IEEE 802.3 / zlib CRC-32, as PROTOCOL.md §1 specifies."""
    return zlib.crc32(data) & 0xFFFFFFFF


def frame_to_raw(frame: Frame) -> bytes:
    """Header | payload | auth | crc32, before COBS."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise FrameError("oversize", f"payload {len(frame.payload)} B > MAX_PAYLOAD {MAX_PAYLOAD}")
    header = _HEADER.pack(
        frame.version,
        frame.type,
        frame.flags,
        frame.key_id,
        frame.device_id,
        frame.seq & 0xFFFF,
        len(frame.payload),
    )
    body = header + frame.payload + frame.auth
    return body + struct.pack("<I", crc32(body))


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of a frame, including the trailing 0x00 delimiter."""
    return cobs_encode(frame_to_raw(frame)) + b"\x00"


def decode_raw(raw: bytes) -> Frame:
    """Parse a COBS-decoded block. Raises FrameError(kind) with the firmware's counter name."""
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise FrameError("bad_cobs", f"frame of {len(raw)} B is shorter than header + CRC")
    body, crc_bytes = raw[:-CRC_SIZE], raw[-CRC_SIZE:]
    if crc32(body) != struct.unpack("<I", crc_bytes)[0]:
        raise FrameError("bad_crc", "CRC-32 mismatch")
    version, msg_type, flags, key_id, device_id, seq, length = _HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameError("bad_version", f"protocol version {version}, expected {PROTOCOL_VERSION}")
    if flags & FLAG_RESERVED_MASK or (key_id and not flags & FLAG_AUTH):
        raise FrameError(
            "bad_cobs", f"reserved header bits set (flags 0x{flags:02x}, key_id {key_id})"
        )
    auth_len = AUTH_SIZE if flags & FLAG_AUTH else 0
    if length > MAX_PAYLOAD or HEADER_SIZE + length + auth_len != len(body):
        raise FrameError("bad_cobs", f"length field {length} disagrees with frame size {len(raw)}")
    payload = body[HEADER_SIZE : HEADER_SIZE + length]
    auth = body[HEADER_SIZE + length :]
    return Frame(msg_type, payload, device_id, seq, flags, key_id, version, auth)


def decode_frame(wire: bytes) -> Frame:
    """Decode one frame's wire bytes (with or without the trailing 0x00)."""
    block = wire[:-1] if wire.endswith(b"\x00") else wire
    try:
        raw = cobs_decode(block)
    except CobsError as exc:
        raise FrameError("bad_cobs", str(exc)) from exc
    return decode_raw(raw)


@dataclass
class DecoderStats:
    """Counters named like the firmware's STATS fields."""

    frames_ok: int = 0
    bad_cobs: int = 0
    bad_crc: int = 0
    bad_version: int = 0
    oversize: int = 0
    unframed_bytes: int = 0


@dataclass
class StreamDecoder:
    """Incremental frame decoder that resynchronises on every 0x00 and after any amount of text.

    `feed(data)` returns the frames completed by `data`. A block between delimiters that does not
    decode is counted and handed to `on_unframed` (it is usually boot text or a log line).
    Unframed text longer than a frame (a panic dump, a boot log) never locks the decoder: it
    keeps only the last MAX_ENCODED bytes (a frame can be no longer), hands the rest over at
    once, and at the next delimiter still finds a frame that followed the text directly.
    """

    on_unframed: Callable[[bytes], None] | None = None
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buffer: bytearray = field(default_factory=bytearray)
    _overflowed: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return frames
            self._append(data[start:end])
            frame = self._finish_block()
            if frame is not None:
                frames.append(frame)
            start = end + 1

    def pending(self) -> bytes:
        """Bytes received since the last delimiter (e.g. a partial text line)."""
        return bytes(self._buffer)

    def flush_unframed(self) -> None:
        """Hand text held without a delimiter to `on_unframed` (a monitor calls it after each
        read so log lines show at once); bytes from a possible frame start on stay buffered."""
        keep = _possible_frame_start(self._buffer)
        if keep > 0:
            self._emit_unframed(bytes(self._buffer[:keep]))
            del self._buffer[:keep]

    def _append(self, chunk: bytes) -> None:
        self._buffer += chunk
        excess = len(self._buffer) - MAX_ENCODED
        if excess > 0:
            # Longer than any frame: the head cannot belong to one. Counted once per block.
            if not self._overflowed:
                self._overflowed = True
                self.stats.oversize += 1
            self._emit_unframed(bytes(self._buffer[:excess]))
            del self._buffer[:excess]

    def _finish_block(self) -> Frame | None:
        block = bytes(self._buffer)
        self._buffer.clear()
        overflowed, self._overflowed = self._overflowed, False
        if not block:
            return None  # back-to-back delimiters: idle line, not an error
        try:
            frame = decode_frame(block)
        except FrameError as exc:
            prefix_and_frame = _frame_after_text(block)
            if prefix_and_frame is None:
                if not overflowed:  # an over-long block was counted as oversize already
                    setattr(self.stats, exc.kind, getattr(self.stats, exc.kind) + 1)
                self._emit_unframed(block)
                return None
            prefix, frame = prefix_and_frame
            self._emit_unframed(prefix)
        self.stats.frames_ok += 1
        return frame

    def _emit_unframed(self, block: bytes) -> None:
        self.stats.unframed_bytes += len(block)
        if self.on_unframed is not None:
            self.on_unframed(block)


def _possible_frame_start(buffer: bytearray) -> int:
    """Offset of the first byte that may begin a frame (a COBS code byte followed by the
    version byte 1), or len(buffer) when none can. A last control byte may be a code byte
    whose version byte has not arrived yet (frames usually start with 0x03: flags are 0)."""
    for index in range(len(buffer) - 1):
        if buffer[index + 1] == PROTOCOL_VERSION and buffer[index] != 0:
            return index
    if buffer and buffer[-1] < 0x20 and buffer[-1] not in b"\t\n\r":
        return len(buffer) - 1
    return len(buffer)


def _frame_after_text(block: bytes) -> tuple[bytes, Frame] | None:
    """Find a valid frame at the end of a block that starts with text not ended by 0x00.

    A device that prints boot text and then sends a frame without a leading delimiter would
    otherwise lose that frame. Candidates are the offsets whose byte is a COBS code byte of at
    least 2 (the version byte that follows is non-zero) followed by the version byte; the CRC
    rejects false starts. At most MAX_FRAME_CANDIDATES are tried, so hostile text costs little.
    """
    tried = 0
    for start in range(1, len(block) - 1):
        if block[start + 1] != PROTOCOL_VERSION or block[start] < 2:
            continue
        tried += 1
        if tried > MAX_FRAME_CANDIDATES:
            return None
        try:
            return block[:start], decode_frame(block[start:])
        except FrameError:
            continue
    return None
