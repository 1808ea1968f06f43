"""Message payloads (PROTOCOL.md §2): one dataclass per message type with pack()/unpack().

`unpack` raises MessageError when the payload length is wrong for the type, so a malformed
frame never turns into a half-filled message.
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, Self


class MsgType(IntEnum):
    HELLO = 0x01
    INFO = 0x02
    LOG = 0x03
    MODEL_BEGIN = 0x10
    MODEL_CHUNK = 0x11
    MODEL_COMMIT = 0x12
    SAMPLE = 0x20
    INFER = 0x21
    RESULT = 0x22
    TRAIN = 0x30
    UPDATE_READY = 0x31
    UPDATE_GET = 0x32
    UPDATE_CHUNK = 0x33
    ACK = 0x40
    NACK = 0x41
    STATS_GET = 0x50
    STATS = 0x51
    CLEAR = 0x60
    RESET = 0x61
    SEED = 0x62
    ENROLL_GET = 0x70
    ENROLL_INFO = 0x71
    ENROLL_SET = 0x72
    SECAGG_SETUP = 0x73
    SECAGG_KEYS = 0x74
    SECAGG_PEERS = 0x75
    SECAGG_SHARES = 0x76
    SECAGG_SHARES_IN = 0x77
    SECAGG_MASK = 0x78
    SECAGG_MASKED = 0x79
    SECAGG_UNMASK = 0x7A
    SECAGG_REVEAL = 0x7B


class NackCode(IntEnum):
    BAD_FRAME = 1
    BAD_CRC = 2
    BAD_VERSION = 3
    UNKNOWN_TYPE = 4
    BAD_LENGTH = 5
    BAD_STATE = 6
    BAD_HASH = 7
    NONFINITE = 8
    SHAPE = 9
    NO_DATA = 10
    UNSUPPORTED = 11
    BAD_PARAM = 12
    INCOMPLETE = 13
    STORAGE = 14
    MISMATCH = 15
    # 16-23: the device's own privacy policy and ledger
    POLICY_NOISE = 16
    POLICY_CLIP = 17
    POLICY_QUANT = 18
    POLICY_WORK = 19
    BUDGET = 20
    ROUND_OLD = 21
    HEAD_NORM = 24  # MODEL_COMMIT: a value beyond HEAD_MAX_ABS or an L2 norm beyond HEAD_MAX_L2
    AUTH_REQUIRED = 32
    AUTH_TAG = 33
    AUTH_REPLAY = 34
    AUTH_KEY = 35
    NOT_ENROLLED = 36
    ENROLLED = 37
    FORCE_REFUSED = 38
    NO_IDENTITY = 39
    BAD_KEY = 40
    SECAGG_STATE = 41
    SECAGG_PEERS = 42
    SECAGG_SHARE = 43
    SECAGG_THRESHOLD = 44
    SECAGG_CONSISTENCY = 45
    SECAGG_MODULUS = 46
    SECAGG_ACTIVE = 47


class Capability(IntEnum):
    """INFO.capabilities bits."""

    SAMPLE = 1 << 0
    TRAIN = 1 << 1
    DISCRETE_GAUSSIAN = 1 << 2
    SEED = 1 << 3
    PERSISTENT_STORAGE = 1 << 4
    REPLAY = 1 << 5  # replay profile: SAMPLE/INFER on host windows, SEED, seeded TRAIN
    LEDGER = 1 << 6  # the device enforces its policy and accounts every release


class Profile(IntEnum):
    """INFO.profile: what the firmware was built as (docs/ARCHITECTURE.md, build profiles)."""

    PRODUCTION = 0
    REPLAY = 1


class ResetReason(IntEnum):
    """INFO.reset_reason (fc_platform_reset_reason)."""

    UNKNOWN = 0
    POWER_ON = 1
    SOFTWARE = 2
    WATCHDOG = 3
    PANIC = 4
    BROWNOUT = 5
    EXTERNAL = 6


UPDATE_GET_READY_OFFSET = 0xFFFFFFFF  # UPDATE_GET at this offset asks for UPDATE_READY again
INFER_USE_GLOBAL = 0x01
INFER_WANT_EMBEDDING = 0x02
SAMPLE_LABELLED = 0x01
CLEAR_EXAMPLES = 0x01
CLEAR_PERSONAL_HEAD = 0x02
TRAIN_USE_SEED = 0x01
TRAIN_IMPRINT = 0x02  # personalization: after training, add the class prototypes (strength 1)
TRAIN_IMPRINT_STRENGTH = 1.0
UPDATE_SATURATED = 0x02  # bit0 (formerly CLIPPED) is reserved: it was a bit about the data
BUSY_DETAIL = 0x59535542  # NACK BAD_STATE detail while the device trains ("BUSY")
HEAD_MAX_ABS = 64  # largest |value| of a head the device installs
HEAD_MAX_L2 = 1024  # largest L2 norm (W and b together) of a head the device installs
ENROLL_FORCE = 0x01
ENROLL_INFO_ENROLLED = 0x01
ENROLL_INFO_FORCE_WINDOW = 0x02
ENROLL_INFO_REPLAY_PROFILE = 0x04
SESSION_NONCE_LEN = 16


class MessageError(ValueError):
    """A payload does not match its message type's layout."""


class _Fixed:
    """Base for messages whose payload is one struct (optionally followed by a byte tail)."""

    TYPE: ClassVar[MsgType]
    FORMAT: ClassVar[struct.Struct]
    TAIL: ClassVar[str | None] = None  # name of a trailing bytes field, if any

    def reserved_bits_error(self) -> str | None:
        """Why a received payload breaks a must-be-zero rule, or None (overridden per type)."""
        return None

    def pack(self) -> bytes:
        values = astuple(self)  # type: ignore[call-overload]
        if self.TAIL is None:
            return self.FORMAT.pack(*values)
        return self.FORMAT.pack(*values[:-1]) + bytes(values[-1])

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        size = cls.FORMAT.size
        if len(payload) < size or (cls.TAIL is None and len(payload) != size):
            raise MessageError(
                f"{cls.TYPE.name}: payload {len(payload)} B, expected {size} B"
                + (" + data" if cls.TAIL else "")
            )
        values: list[Any] = list(cls.FORMAT.unpack_from(payload))
        if cls.TAIL is not None:
            values.append(bytes(payload[size:]))
        message = cls(*values)
        problem = message.reserved_bits_error()
        if problem is not None:
            raise MessageError(f"{cls.TYPE.name}: {problem}")
        return message


def _fmt(spec: str) -> struct.Struct:
    return struct.Struct("<" + spec)


@dataclass(frozen=True)
class Empty:
    """HELLO, STATS_GET, RESET: no payload; use `Hello()`, `StatsGet()`, `Reset()`."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        if payload:
            raise MessageError(f"{cls.TYPE.name}: expected an empty payload, got {len(payload)} B")
        return cls()


@dataclass(frozen=True)
class Hello(Empty):
    TYPE: ClassVar[MsgType] = MsgType.HELLO


@dataclass(frozen=True)
class StatsGet(Empty):
    TYPE: ClassVar[MsgType] = MsgType.STATS_GET


@dataclass(frozen=True)
class Reset(Empty):
    TYPE: ClassVar[MsgType] = MsgType.RESET


@dataclass(frozen=True)
class Info(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.INFO
    FORMAT: ClassVar[struct.Struct] = _fmt("HB15s32s32sIHHHIIHHBBBBfffIIffIf")
    fw_version: int
    proto_version: int
    board: bytes
    model_sha256: bytes
    head_sha256: bytes
    head_version: int
    embed_dim: int
    num_classes: int
    input_len: int
    capabilities: int
    free_ram: int
    examples: int  # labelled examples held; always 0 on a production board (data-derived)
    capacity: int
    profile: int = Profile.PRODUCTION
    reset_reason: int = ResetReason.UNKNOWN
    policy_bits_mask: int = 0  # allowed wire widths: 1 = 8 bits, 2 = 16, 4 = 32
    reserved: int = 0
    epsilon_spent: float = 0.0  # the device's own ledger, at `delta`
    epsilon_budget: float = 0.0  # lifetime budget (inf: none)
    delta: float = 0.0
    releases: int = 0  # updates released over the device's life
    last_round: int = 0  # round id of the last release
    policy_z_min: float = 0.0  # noise_std >= z_min * clip
    policy_clip_max: float = 0.0
    policy_max_work: int = 0  # epochs * example capacity
    policy_scale_min_rel: float = 0.0  # scale >= this * clip

    @property
    def board_name(self) -> str:
        return self.board.rstrip(b"\x00").decode("utf-8", "replace")

    @property
    def profile_name(self) -> str:
        try:
            return Profile(self.profile).name.lower()
        except ValueError:
            return f"unknown-{self.profile}"

    @property
    def is_replay(self) -> bool:
        """A replay (simulation) build: host windows, SEED, seeded TRAIN, no privacy policy."""
        return self.profile != Profile.PRODUCTION or self.has(Capability.REPLAY)

    def has(self, capability: Capability) -> bool:
        return bool(self.capabilities & capability)


@dataclass(frozen=True)
class Log(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.LOG
    FORMAT: ClassVar[struct.Struct] = _fmt("B")
    TAIL: ClassVar[str | None] = "text"
    level: int
    text: bytes

    LEVELS: ClassVar[tuple[str, ...]] = ("debug", "info", "warn", "error")

    @property
    def level_name(self) -> str:
        return self.LEVELS[self.level] if self.level < len(self.LEVELS) else str(self.level)


@dataclass(frozen=True)
class ModelBegin(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.MODEL_BEGIN
    FORMAT: ClassVar[struct.Struct] = _fmt("IIHH32s")
    head_version: int
    total_len: int
    embed_dim: int
    num_classes: int
    sha256: bytes


@dataclass(frozen=True)
class ModelChunk(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.MODEL_CHUNK
    FORMAT: ClassVar[struct.Struct] = _fmt("II")
    TAIL: ClassVar[str | None] = "data"
    head_version: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class ModelCommit(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.MODEL_COMMIT
    FORMAT: ClassVar[struct.Struct] = _fmt("I")
    head_version: int


@dataclass(frozen=True)
class Sample(_Fixed):
    """SAMPLE (and INFER via `Infer`): `flags`, `label`, `n`, then n int8 window bytes."""

    TYPE: ClassVar[MsgType] = MsgType.SAMPLE
    FORMAT: ClassVar[struct.Struct] = _fmt("BBH")
    TAIL: ClassVar[str | None] = "window"
    flags: int
    label: int
    n: int
    window: bytes

    def reserved_bits_error(self) -> str | None:
        if self.flags & ~SAMPLE_LABELLED or (not self.flags & SAMPLE_LABELLED and self.label):
            return f"reserved flag bits or an unused label (flags 0x{self.flags:02x})"
        return None

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        message = super().unpack(payload)
        if message.n != len(message.window):
            raise MessageError(f"{cls.TYPE.name}: n={message.n} but {len(message.window)} B")
        return message


@dataclass(frozen=True)
class Infer(Sample):
    TYPE: ClassVar[MsgType] = MsgType.INFER

    def reserved_bits_error(self) -> str | None:
        if self.flags & ~(INFER_USE_GLOBAL | INFER_WANT_EMBEDDING) or self.label:
            return f"reserved flag bits or a nonzero byte 1 (flags 0x{self.flags:02x})"
        return None


@dataclass(frozen=True)
class Result:
    TYPE: ClassVar[MsgType] = MsgType.RESULT
    predicted: int
    head: int
    logits: tuple[float, ...]
    embedding: tuple[float, ...]
    stored: int
    backbone_us: int

    def pack(self) -> bytes:
        return (
            struct.pack("<BBH", self.predicted, self.head, len(self.logits))
            + struct.pack(f"<{len(self.logits)}f", *self.logits)
            + struct.pack("<H", len(self.embedding))
            + struct.pack(f"<{len(self.embedding)}f", *self.embedding)
            + struct.pack("<HI", self.stored, self.backbone_us)
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        try:
            predicted, head, n_classes = struct.unpack_from("<BBH", payload, 0)
            offset = 4
            logits = struct.unpack_from(f"<{n_classes}f", payload, offset)
            offset += 4 * n_classes
            (n_embed,) = struct.unpack_from("<H", payload, offset)
            offset += 2
            embedding = struct.unpack_from(f"<{n_embed}f", payload, offset)
            offset += 4 * n_embed
            stored, backbone_us = struct.unpack_from("<HI", payload, offset)
        except struct.error as exc:
            raise MessageError(f"RESULT: truncated payload of {len(payload)} B") from exc
        if offset + 6 != len(payload):
            raise MessageError(f"RESULT: {len(payload) - offset - 6} B beyond the layout")
        return cls(predicted, head, logits, embedding, stored, backbone_us)


@dataclass(frozen=True)
class Train(_Fixed):
    """TRAIN parameters (PROTOCOL.md §2.4). Defaults are a plain, noiseless float round."""

    TYPE: ClassVar[MsgType] = MsgType.TRAIN
    FORMAT: ClassVar[struct.Struct] = _fmt("IfHHffffffBBHQ")
    round: int
    lr: float = 0.1
    epochs: int = 1
    batch: int = 8
    momentum: float = 0.0
    weight_decay: float = 0.0
    example_clip: float = 0.0
    clip: float = 1.0
    noise_std: float = 0.0
    scale: float = 1.0 / 4096
    bits: int = 16
    flags: int = 0
    reserved: int = 0
    seed: int = 0

    def reserved_bits_error(self) -> str | None:
        if self.reserved or self.flags & ~TRAIN_USE_SEED:
            return f"reserved field {self.reserved} or flags 0x{self.flags:02x}"
        return None


@dataclass(frozen=True)
class UpdateReady(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.UPDATE_READY
    FORMAT: ClassVar[struct.Struct] = _fmt("IIHBBfffIIf")
    round: int
    head_version: int
    n_params: int
    bits: int
    flags: int
    scale: float
    clip: float  # the privatization parameters the device applied
    noise_std: float
    total_len: int
    crc32: int
    epsilon_spent: float  # the device's ledger after this release

    def reserved_bits_error(self) -> str | None:
        if self.flags & ~UPDATE_SATURATED:
            return f"reserved flag bits 0x{self.flags & ~UPDATE_SATURATED:02x}"
        return None


@dataclass(frozen=True)
class UpdateGet(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.UPDATE_GET
    FORMAT: ClassVar[struct.Struct] = _fmt("IIH")
    round: int
    offset: int
    max_len: int


@dataclass(frozen=True)
class UpdateChunk(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.UPDATE_CHUNK
    FORMAT: ClassVar[struct.Struct] = _fmt("II")
    TAIL: ClassVar[str | None] = "data"
    round: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class Ack(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.ACK
    FORMAT: ClassVar[struct.Struct] = _fmt("HBBI")
    ack_seq: int
    ack_type: int
    reserved: int = 0
    value: int = 0

    def reserved_bits_error(self) -> str | None:
        return f"reserved byte {self.reserved}" if self.reserved else None


@dataclass(frozen=True)
class Nack(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.NACK
    FORMAT: ClassVar[struct.Struct] = _fmt("HBBI")
    ack_seq: int
    ack_type: int
    code: int
    detail: int = 0

    @property
    def code_name(self) -> str:
        try:
            return NackCode(self.code).name
        except ValueError:
            return f"UNKNOWN_NACK_{self.code}"


@dataclass(frozen=True)
class Stats(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.STATS
    FORMAT: ClassVar[struct.Struct] = _fmt("10I")
    frames_ok: int = 0
    bad_cobs: int = 0
    bad_crc: int = 0
    bad_version: int = 0
    oversize: int = 0
    unknown_type: int = 0
    nacks: int = 0
    models_installed: int = 0
    models_rejected: int = 0
    uptime_ms: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Clear(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.CLEAR
    FORMAT: ClassVar[struct.Struct] = _fmt("B")
    what: int = CLEAR_EXAMPLES | CLEAR_PERSONAL_HEAD

    def reserved_bits_error(self) -> str | None:
        if self.what & ~(CLEAR_EXAMPLES | CLEAR_PERSONAL_HEAD):
            return f"reserved bits in 0x{self.what:02x}"
        return None


@dataclass(frozen=True)
class Seed(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.SEED
    FORMAT: ClassVar[struct.Struct] = _fmt("32s")
    seed: bytes = field(default=b"\x00" * 32)


@dataclass(frozen=True)
class EnrollGet(Empty):
    TYPE: ClassVar[MsgType] = MsgType.ENROLL_GET


@dataclass(frozen=True)
class EnrollInfo(_Fixed):
    """The device's identity, enrollment, this boot's session nonce and auth counters (§6)."""

    TYPE: ClassVar[MsgType] = MsgType.ENROLL_INFO
    FORMAT: ClassVar[struct.Struct] = _fmt("32s32s16sBBHIIIIII")
    device_public: bytes
    server_public: bytes
    session_nonce: bytes
    flags: int
    key_id: int
    reserved: int
    rx_counter: int
    tx_counter: int
    rejected_required: int
    rejected_tag: int
    rejected_replay: int
    rejected_key: int

    @property
    def enrolled(self) -> bool:
        return bool(self.flags & ENROLL_INFO_ENROLLED)


@dataclass(frozen=True)
class EnrollSet(_Fixed):
    TYPE: ClassVar[MsgType] = MsgType.ENROLL_SET
    FORMAT: ClassVar[struct.Struct] = _fmt("32sB3s")
    server_public: bytes
    flags: int = 0
    reserved: bytes = b"\x00\x00\x00"


Message = (
    Hello
    | StatsGet
    | Reset
    | Info
    | Log
    | ModelBegin
    | ModelChunk
    | ModelCommit
    | Sample
    | Infer
    | Result
    | Train
    | UpdateReady
    | UpdateGet
    | UpdateChunk
    | Ack
    | Nack
    | Stats
    | Clear
    | Seed
    | EnrollGet
    | EnrollInfo
    | EnrollSet
)

MESSAGE_CLASSES: dict[MsgType, type] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        StatsGet,
        Reset,
        Info,
        Log,
        ModelBegin,
        ModelChunk,
        ModelCommit,
        Sample,
        Infer,
        Result,
        Train,
        UpdateReady,
        UpdateGet,
        UpdateChunk,
        Ack,
        Nack,
        Stats,
        Clear,
        Seed,
        EnrollGet,
        EnrollInfo,
        EnrollSet,
    )
}


def parse_payload(msg_type: int, payload: bytes) -> Message:
    """Decode a payload of a known type. Raises MessageError for unknown types or bad layouts."""
    try:
        cls = MESSAGE_CLASSES[MsgType(msg_type)]
    except ValueError as exc:
        raise MessageError(f"unknown message type 0x{msg_type:02x}") from exc
    return cls.unpack(payload)
