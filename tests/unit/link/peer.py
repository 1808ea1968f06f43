"""A protocol peer in Python for link-layer tests: answers frames on the master side of a real pty.

It is not the firmware (tests/hil drives the real one); it exists so framing, retries and fault
handling of `DeviceClient` are tested over a real kernel pty and pyserial before and beside the
firmware. Its update for round r is a deterministic function of (device_id, r) so a test can
compute exactly what the host must have received.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import threading
from dataclasses import dataclass, field

import numpy as np

from tools.link import messages as m
from tools.link.frame import FLAG_REPLY, Frame, StreamDecoder, crc32, encode_frame
from tools.link.messages import MsgType, NackCode


def peer_delta_q(
    device_id: int, round_id: int, n_params: int, bits: int, clip: float, scale: float
) -> np.ndarray:
    """The integer update the peer sends for a round (what the host must receive): a random Δ
    clipped to L2 norm `clip`, rounded to the grid `scale`, saturated to `bits`."""
    rng = np.random.default_rng([device_id, round_id])
    delta = rng.normal(0.0, 0.2, n_params)
    norm = float(np.linalg.norm(delta))
    if norm > clip:
        delta *= clip / norm
    hi = (1 << (bits - 1)) - 1
    return np.clip(np.round(delta / np.float32(scale)), -hi - 1, hi).astype(np.int64)


@dataclass
class PyPeer:
    """Serve one pty; `path` is the slave side the host opens with pyserial."""

    device_id: int = 7
    embed_dim: int = 4
    num_classes: int = 3
    boot_text: bytes = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n"
    head_sha256: bytes = b"\x00" * 32
    head_version: int = 0
    hostile: str = ""  # "", "huge_norm", "nan_scale", "wrong_shape"
    train_delay_s: float = 0.0  # seconds between the TRAIN ACK and UPDATE_READY
    received: list[Frame] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self._decoder = StreamDecoder()
        self._seq = 0
        self._model: dict[str, object] = {}
        self._update: tuple[m.UpdateReady, bytes, int] | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def n_params(self) -> int:
        return self.embed_dim * self.num_classes + self.num_classes

    def start(self) -> PyPeer:
        self._thread.start()
        return self

    def boot(self) -> None:
        """Print boot text, then the unsolicited INFO, as a device does after reset.

        Call it after the host opened the port: pyserial flushes pending input on open."""
        os.write(self.master, self.boot_text)
        self._send(MsgType.INFO, self._info().pack(), 0, reply=False)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def log(self, text: str) -> None:
        self._send(MsgType.LOG, m.Log(1, text.encode()).pack(), 0, reply=False)

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for frame in self._decoder.feed(data):
                self.received.append(frame)
                self._handle(frame)

    def _send(self, msg_type: int, payload: bytes, seq: int, reply: bool = True) -> None:
        if not reply:
            self._seq = (self._seq + 1) & 0xFFFF
            seq = self._seq
        frame = Frame(msg_type, payload, self.device_id, seq, FLAG_REPLY if reply else 0)
        os.write(self.master, encode_frame(frame))

    def _ack(self, frame: Frame, value: int = 0) -> None:
        self._send(MsgType.ACK, m.Ack(frame.seq, frame.type, 0, value).pack(), frame.seq)

    def _nack(self, frame: Frame, code: NackCode) -> None:
        self._send(MsgType.NACK, m.Nack(frame.seq, frame.type, code, 0).pack(), frame.seq)

    def _info(self) -> m.Info:
        return m.Info(
            0x0100,
            1,
            b"pypeer",
            b"\x11" * 32,
            self.head_sha256,
            self.head_version,
            self.embed_dim,
            self.num_classes,
            16,
            0b11011,
            0,
            5,
            64,
        )

    def _handle(self, frame: Frame) -> None:
        handler = {
            MsgType.HELLO: lambda f: self._send(MsgType.INFO, self._info().pack(), f.seq),
            MsgType.STATS_GET: lambda f: self._send(
                MsgType.STATS, m.Stats(frames_ok=len(self.received)).pack(), f.seq
            ),
            MsgType.MODEL_BEGIN: self._model_begin,
            MsgType.MODEL_CHUNK: self._model_chunk,
            MsgType.MODEL_COMMIT: self._model_commit,
            MsgType.TRAIN: self._train,
            MsgType.UPDATE_GET: self._update_get,
            MsgType.SAMPLE: self._result,
            MsgType.INFER: self._result,
            MsgType.CLEAR: self._ack,
        }.get(MsgType(frame.type) if frame.type in MsgType._value2member_map_ else None)
        if handler is None:
            self._nack(frame, NackCode.UNKNOWN_TYPE)
            return
        try:
            handler(frame)
        except m.MessageError:
            self._nack(frame, NackCode.BAD_LENGTH)

    def _model_begin(self, frame: Frame) -> None:
        begin = m.ModelBegin.unpack(frame.payload)
        if (begin.embed_dim, begin.num_classes) != (self.embed_dim, self.num_classes):
            self._nack(frame, NackCode.SHAPE)
            return
        self._model = {"begin": begin, "data": bytearray(begin.total_len), "held": set()}
        self._ack(frame)

    def _model_chunk(self, frame: Frame) -> None:
        chunk = m.ModelChunk.unpack(frame.payload)
        if not self._model:
            self._nack(frame, NackCode.BAD_STATE)
            return
        data: bytearray = self._model["data"]  # type: ignore[assignment]
        data[chunk.offset : chunk.offset + len(chunk.data)] = chunk.data
        held: set[int] = self._model["held"]  # type: ignore[assignment]
        held.update(range(chunk.offset, chunk.offset + len(chunk.data)))
        self._ack(frame, len(held))

    def _model_commit(self, frame: Frame) -> None:
        if not self._model:
            self._nack(frame, NackCode.BAD_STATE)
            return
        begin: m.ModelBegin = self._model["begin"]  # type: ignore[assignment]
        data = bytes(self._model["data"])  # type: ignore[arg-type]
        if len(self._model["held"]) != begin.total_len:  # type: ignore[arg-type]
            self._nack(frame, NackCode.INCOMPLETE)
            return
        if hashlib.sha256(data).digest() != begin.sha256:
            self._nack(frame, NackCode.BAD_HASH)
            return
        self.head_sha256, self.head_version = begin.sha256, begin.head_version
        self._model = {}
        self._ack(frame)

    def _train(self, frame: Frame) -> None:
        train = m.Train.unpack(frame.payload)
        q = peer_delta_q(
            self.device_id, train.round, self.n_params, train.bits, train.clip, train.scale
        )
        n_params, scale, round_id = self.n_params, train.scale, train.round
        if self.hostile == "huge_norm":
            q = q * 50
        elif self.hostile == "wrong_shape":
            q, n_params = q[:-1], n_params - 1
        elif self.hostile == "nan_scale":
            scale = float("nan")
        hi = (1 << (train.bits - 1)) - 1
        data = np.clip(q, -hi - 1, hi).astype({8: "<i1", 16: "<i2", 32: "<i4"}[train.bits])
        data = data.tobytes()
        ready = m.UpdateReady(
            round_id,
            self.head_version,
            n_params,
            train.bits,
            0,
            scale,
            train.clip,
            train.noise_std,
            len(data),
            crc32(data),
            0.0,
        )
        self._ack(frame)
        self._update = None
        if self.train_delay_s:
            self._stop.wait(self.train_delay_s)
        self._update = (ready, data, train.round)
        self._send(MsgType.UPDATE_READY, ready.pack(), 0, reply=False)

    def _update_get(self, frame: Frame) -> None:
        get = m.UpdateGet.unpack(frame.payload)
        if self._update is None or self._update[2] != get.round:
            self._nack(frame, NackCode.NO_DATA)
            return
        ready, data, _ = self._update
        if get.offset == m.UPDATE_GET_READY_OFFSET:
            self._send(MsgType.UPDATE_READY, ready.pack(), frame.seq)
            return
        piece = data[get.offset : get.offset + get.max_len]
        self._send(
            MsgType.UPDATE_CHUNK, m.UpdateChunk(get.round, get.offset, piece).pack(), frame.seq
        )

    def _result(self, frame: Frame) -> None:
        sample = m.Sample.unpack(frame.payload)
        logits = tuple(float(v) for v in np.arange(self.num_classes))
        stored = int(frame.type == MsgType.SAMPLE and sample.flags & m.SAMPLE_LABELLED)
        payload = m.Result(self.num_classes - 1, 1, logits, (), stored, 42).pack()
        self._send(MsgType.RESULT, payload, frame.seq)
