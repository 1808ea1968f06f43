"""Python twin of fedcore/auth.h: the authenticated link of an enrolled device (PROTOCOL.md §6).

A `LinkSession` holds one boot session's per-direction keys, derived exactly like the firmware:

    shared   = X25519(server secret, device public)
    key_dir  = HKDF-SHA-256(salt = session nonce (16 B, from ENROLL_INFO), ikm = shared,
                            info = label_dir | u32 device_id | u8 key_id | device public
                                   | server public)

`seal` turns a plain host->device frame into an authenticated one (payload encrypted with
ChaCha20-Poly1305, nonce = u32 counter | 8 zero bytes, associated data = the 12 header bytes as
sent, the counter and the 4 reserved bytes); `open` checks and decrypts a device->host frame,
refusing damaged, forged, replayed and reordered ones with `AuthError` (its `kind` names the
counter).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from tools.link import crypto
from tools.link.frame import AUTH_SIZE, FLAG_AUTH, HEADER_SIZE, Frame, frame_to_raw
from tools.link.messages import MsgType

LABEL_H2D = b"fedhead link v1 host->device"
LABEL_D2H = b"fedhead link v1 device->host"
# Host->device requests an enrolled device takes only authenticated.
PROTECTED_REQUESTS = frozenset(
    {
        MsgType.MODEL_BEGIN,
        MsgType.MODEL_CHUNK,
        MsgType.MODEL_COMMIT,
        MsgType.TRAIN,
        MsgType.UPDATE_GET,
        MsgType.SECAGG_SETUP,
        MsgType.SECAGG_PEERS,
        MsgType.SECAGG_SHARES_IN,
        MsgType.SECAGG_MASK,
        MsgType.SECAGG_UNMASK,
    }
)
# Device->host frames an enrolled device always seals.
SEALED_UPDATES = frozenset({MsgType.UPDATE_READY, MsgType.UPDATE_CHUNK})
_COUNTER_MAX = 0xFFFFFFFF


class AuthError(ValueError):
    """A frame failed authentication; kind: 'tag', 'replay', 'key' or 'plain'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def server_keypair(secret: bytes) -> tuple[bytes, bytes]:
    """(secret, public) of the server's long-term X25519 key."""
    return secret, crypto.x25519_public(secret)


def direction_keys(
    server_secret: bytes, device_public: bytes, device_id: int, session_nonce: bytes, key_id: int
) -> tuple[bytes, bytes]:
    """(host->device key, device->host key) for one boot session of one enrollment."""
    shared = crypto.x25519_shared(server_secret, device_public)
    server_public = crypto.x25519_public(server_secret)
    tail = struct.pack("<IB", device_id, key_id) + device_public + server_public
    return (
        crypto.hkdf_sha256(session_nonce, shared, LABEL_H2D + tail, crypto.AEAD_KEY_LEN),
        crypto.hkdf_sha256(session_nonce, shared, LABEL_D2H + tail, crypto.AEAD_KEY_LEN),
    )


def _nonce(counter: int) -> bytes:
    return struct.pack("<I", counter) + bytes(8)


def _associated_data(frame: Frame, counter: bytes, reserved: bytes) -> bytes:
    return frame_to_raw(replace(frame, auth=b""))[:HEADER_SIZE] + counter + reserved


@dataclass
class LinkSession:
    """One device's boot session as the server sees it."""

    device_id: int
    key_id: int
    key_h2d: bytes
    key_d2h: bytes
    tx_counter: int = 0  # last host->device counter used
    rx_counter: int = 0  # last device->host counter accepted
    rejected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def derive(
        cls,
        server_secret: bytes,
        device_public: bytes,
        device_id: int,
        session_nonce: bytes,
        key_id: int,
    ) -> LinkSession:
        h2d, d2h = direction_keys(server_secret, device_public, device_id, session_nonce, key_id)
        return cls(device_id, key_id, h2d, d2h)

    def seal(self, frame: Frame) -> Frame:
        """The authenticated, encrypted version of a plain host->device frame."""
        if self.tx_counter >= _COUNTER_MAX:
            raise AuthError("replay", "counter exhausted: start a new session (RESET)")
        self.tx_counter += 1
        counter, reserved = struct.pack("<I", self.tx_counter), bytes(4)
        # The header's length is the payload's; the cipher text has the same length.
        shell = replace(frame, flags=frame.flags | FLAG_AUTH, key_id=self.key_id)
        ad = _associated_data(shell, counter, reserved)
        cipher, tag = crypto.aead_seal(self.key_h2d, _nonce(self.tx_counter), ad, frame.payload)
        return replace(shell, payload=cipher, auth=counter + tag + reserved)

    def open(self, frame: Frame) -> Frame:
        """The decrypted device->host frame (flags keep AUTH), or AuthError."""
        if not frame.flags & FLAG_AUTH or len(frame.auth) != AUTH_SIZE:
            raise AuthError("plain", f"{MsgType(frame.type).name} arrived unauthenticated")
        if frame.key_id != self.key_id or frame.device_id != self.device_id:
            return self._reject("key", f"key_id {frame.key_id} / device {frame.device_id:#x}")
        counter_bytes, tag, reserved = frame.auth[:4], frame.auth[4:20], frame.auth[20:]
        counter = struct.unpack("<I", counter_bytes)[0]
        ad = _associated_data(frame, counter_bytes, reserved)
        try:
            plain = crypto.aead_open(self.key_d2h, _nonce(counter), ad, frame.payload, tag)
        except crypto.CryptoError:
            return self._reject("tag", "tag does not verify")
        if counter <= self.rx_counter:
            return self._reject("replay", f"counter {counter} <= {self.rx_counter}")
        self.rx_counter = counter
        return replace(frame, payload=plain)

    def _reject(self, kind: str, message: str) -> Frame:
        self.rejected[kind] = self.rejected.get(kind, 0) + 1
        raise AuthError(kind, message)
