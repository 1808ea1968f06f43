"""SecAgg payloads (PROTOCOL.md §7): requests with TYPE/pack() for DeviceClient.request, and
parsers of the device's answers. Layouts match fedcore/protocol.h (FC_SECAGG_*)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from tools.link.messages import MessageError, MsgType
from tools.secagg.shamir import SHARE_LEN

LIST_HDR = struct.Struct("<IHH")  # round, n, 0
PEER = struct.Struct("<I32s32s")
SHARE_CT_LEN = 8 + 2 * SHARE_LEN + 16  # from, to, s-share, b-share, AEAD tag
SHARE_ENTRY = struct.Struct(f"<I{SHARE_CT_LEN}s")
MASK_HDR = struct.Struct("<IIHH")
MASKED_HDR = struct.Struct("<IIIB3x")
UNMASK_ENTRY = struct.Struct("<IB3x")
REVEAL_ENTRY = struct.Struct(f"<IB3x{SHARE_LEN}s")
SURVIVOR, DROPPED = 0, 1


@dataclass(frozen=True)
class Setup:
    TYPE: ClassVar[MsgType] = MsgType.SECAGG_SETUP
    round: int
    n: int
    t: int
    bits_mod: int

    def pack(self) -> bytes:
        return struct.pack("<IHHB3x", self.round, self.n, self.t, self.bits_mod)


@dataclass(frozen=True)
class Peers:
    TYPE: ClassVar[MsgType] = MsgType.SECAGG_PEERS
    round: int
    peers: tuple[tuple[int, bytes, bytes], ...]  # (device id, c_pk, s_pk)

    def pack(self) -> bytes:
        return LIST_HDR.pack(self.round, len(self.peers), 0) + b"".join(
            PEER.pack(*p) for p in self.peers
        )


@dataclass(frozen=True)
class SharesIn:
    TYPE: ClassVar[MsgType] = MsgType.SECAGG_SHARES_IN
    round: int
    shares: tuple[tuple[int, bytes], ...]  # (from id, cipher text)

    def pack(self) -> bytes:
        return LIST_HDR.pack(self.round, len(self.shares), 0) + b"".join(
            SHARE_ENTRY.pack(*s) for s in self.shares
        )


@dataclass(frozen=True)
class Mask:
    TYPE: ClassVar[MsgType] = MsgType.SECAGG_MASK
    round: int
    offset: int
    max_len: int
    u2: tuple[int, ...]

    def pack(self) -> bytes:
        head = MASK_HDR.pack(self.round, self.offset, self.max_len, len(self.u2))
        return head + struct.pack(f"<{len(self.u2)}I", *self.u2)


@dataclass(frozen=True)
class Unmask:
    TYPE: ClassVar[MsgType] = MsgType.SECAGG_UNMASK
    round: int
    entries: tuple[tuple[int, int], ...]  # (device id, SURVIVOR | DROPPED)

    def pack(self) -> bytes:
        return LIST_HDR.pack(self.round, len(self.entries), 0) + b"".join(
            UNMASK_ENTRY.pack(*e) for e in self.entries
        )


def _list(payload: bytes, entry: struct.Struct) -> tuple[int, list[tuple]]:
    if len(payload) < LIST_HDR.size:
        raise MessageError(f"SecAgg list of {len(payload)} B")
    round_id, n, _ = LIST_HDR.unpack_from(payload)
    if len(payload) != LIST_HDR.size + n * entry.size:
        raise MessageError(f"SecAgg list: {len(payload)} B for {n} entries of {entry.size} B")
    return round_id, [entry.unpack_from(payload, LIST_HDR.size + i * entry.size) for i in range(n)]


def parse_keys(payload: bytes) -> tuple[int, bytes, bytes]:
    if len(payload) != 68:
        raise MessageError(f"SECAGG_KEYS of {len(payload)} B, expected 68")
    return struct.unpack("<I32s32s", payload)


def parse_shares(payload: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    return _list(payload, SHARE_ENTRY)


def parse_masked(payload: bytes) -> tuple[int, int, int, int, bytes]:
    """(round, offset, total_len, bits_mod, data)."""
    if len(payload) < MASKED_HDR.size:
        raise MessageError(f"SECAGG_MASKED of {len(payload)} B")
    return (*MASKED_HDR.unpack_from(payload), payload[MASKED_HDR.size :])


def parse_reveal(payload: bytes) -> tuple[int, list[tuple[int, int, bytes]]]:
    return _list(payload, REVEAL_ENTRY)
