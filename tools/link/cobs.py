"""Consistent Overhead Byte Stuffing (PROTOCOL.md §1): removes every 0x00 so 0x00 can end frames."""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def cobs_encode(data: bytes) -> bytes:
    """Encode `data`; the result contains no 0x00 (the caller appends the delimiter)."""
    out = bytearray()
    code_index = 0
    out.append(0)  # placeholder for the first code byte
    code = 1
    for byte in data:
        if byte == 0:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Decode one COBS block (without its 0x00 delimiter). Raises CobsError when malformed."""
    out = bytearray()
    index = 0
    length = len(encoded)
    while index < length:
        code = encoded[index]
        if code == 0:
            raise CobsError("zero byte inside a COBS block")
        end = index + code
        if end > length:
            raise CobsError("COBS block ends before its code says")
        block = encoded[index + 1 : end]
        if 0 in block:
            raise CobsError("zero byte inside a COBS block")
        out += block
        index = end
        # A code of 0xFF means "254 data bytes, no zero follows"; the last block implies no zero.
        if code != 0xFF and index < length:
            out.append(0)
    return bytes(out)


def max_encoded_len(raw_len: int) -> int:
    """Worst-case encoded size of `raw_len` bytes (PROTOCOL.md §1)."""
    return raw_len + raw_len // 254 + 1
