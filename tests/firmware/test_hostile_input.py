"""Hostile input to the firmware: every bad frame or request gets its NACK and counter, nothing
accepted before is lost, and the device keeps answering (host under ASan/UBSan, and QEMU)."""

from __future__ import annotations

import hashlib
import random
import struct
import time
import zlib

import numpy as np
import pytest

from tests.firmware.conftest import ReplayData
from tools.fleet import VirtualDevice
from tools.link import frame as fr
from tools.link import messages as m
from tools.link.client import DeviceClient, head_blob, head_sha256
from tools.link.cobs import cobs_encode
from tools.link.errors import NackError
from tools.link.messages import MsgType, NackCode


class RawLink:
    """Bytes in, decoded frames out: for frames the client would never build."""

    def __init__(self, client: DeviceClient) -> None:
        self.transport = client.transport
        self.device_id = client.device_id
        self.decoder = fr.StreamDecoder()

    def exchange(self, wire: bytes, quiet: float = 0.3, limit: float = 10.0) -> list[fr.Frame]:
        """Send wire bytes (in pieces, reading the answers in between, like a full-duplex
        host); collect frames until the device is quiet for `quiet` seconds."""
        frames: list[fr.Frame] = []
        deadline = time.monotonic() + limit
        for start in range(0, len(wire), 256):
            self.transport.write(wire[start : start + 256])
            data = self.transport.read(0.001)
            frames += self.decoder.feed(data) if data else []
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            data = self.transport.read(0.05)
            if data:
                frames += self.decoder.feed(data)
                last = time.monotonic()
        return frames

    def frame(self, msg_type: int, payload: bytes = b"", seq: int = 900, **kw: int) -> bytes:
        return fr.encode_frame(fr.Frame(msg_type, payload, self.device_id, seq, **kw))


def _nacks(frames: list[fr.Frame]) -> list[m.Nack]:
    return [m.Nack.unpack(f.payload) for f in frames if f.type == MsgType.NACK]


def _expect_nack(client: DeviceClient, message: m.Message, code: NackCode,
                 expect: MsgType = MsgType.ACK) -> None:
    with pytest.raises(NackError) as info:
        client.request(message, expect=expect, retries=0)
    assert info.value.code == code, info.value


def _stats_delta(before: m.Stats, after: m.Stats) -> dict[str, int]:
    return {k: v - before.as_dict()[k] for k, v in after.as_dict().items()
            if k not in ("uptime_ms",) and not k.endswith("_last") and v != before.as_dict()[k]}


def _model_begin(replay: ReplayData, blob: bytes, version: int, d: int | None = None,
                 c: int | None = None, total: int | None = None) -> m.ModelBegin:
    dd, cc = replay.w.shape
    return m.ModelBegin(version, len(blob) if total is None else total,
                        dd if d is None else d, cc if c is None else c,
                        hashlib.sha256(blob).digest())


def _send_blob(client: DeviceClient, replay: ReplayData, blob: bytes, version: int,
               code: NackCode) -> None:
    client.request(_model_begin(replay, blob, version), expect=MsgType.ACK)
    client.request(m.ModelChunk(version, 0, blob), expect=MsgType.ACK)
    _expect_nack(client, m.ModelCommit(version), code)


def test_broken_frames_get_nacks_and_counters(client: DeviceClient,
                                              device: VirtualDevice) -> None:
    client.hello()
    raw = RawLink(client)
    before = client.stats()
    hello = raw.frame(MsgType.HELLO, seq=901)
    body = fr.frame_to_raw(fr.Frame(MsgType.HELLO, b"", client.device_id, 902))
    bad_crc = cobs_encode(body[:-1] + bytes([body[-1] ^ 0x55])) + b"\x00"
    truncated = hello[:-4] + b"\x00"
    oversize = b"\x01" * (fr.MAX_ENCODED + 10) + b"\x00"
    lying = bytearray(body[:-4])
    lying[10:12] = struct.pack("<H", 40)  # claims 40 payload bytes, has none; CRC is right
    lying_wire = cobs_encode(bytes(lying) + struct.pack("<I", zlib.crc32(lying))) + b"\x00"
    v9 = raw.frame(MsgType.HELLO, seq=903, version=9)

    cases = [(bad_crc, NackCode.BAD_CRC, 0), (truncated, None, 0),
             (oversize, NackCode.BAD_FRAME, 0), (lying_wire, NackCode.BAD_FRAME, 902),
             (v9, NackCode.BAD_VERSION, 903)]
    for wire, code, seq in cases:
        nacks = _nacks(raw.exchange(wire))
        assert len(nacks) == 1, (wire[:20], nacks)
        assert nacks[0].ack_seq == seq
        if code is not None:
            assert nacks[0].code == code
        else:  # a truncated frame fails as bad COBS or bad CRC, depending on where it was cut
            assert nacks[0].code in (NackCode.BAD_FRAME, NackCode.BAD_CRC)
    delta = _stats_delta(before, client.stats())
    assert delta["nacks"] == 5
    assert delta["bad_crc"] + delta["bad_cobs"] == 3  # bad CRC, truncated, lying length
    assert (delta["oversize"], delta["bad_version"]) == (1, 1)
    assert client.hello().embed_dim > 0


def test_random_bytes_never_stop_the_device(client: DeviceClient, device: VirtualDevice,
                                            replay: ReplayData) -> None:
    w, b = replay.w * 0.5, replay.b
    client.install_head(w, b, version=3)
    raw = RawLink(client)
    rng = random.Random(5)
    size = 20_000 if device.kind == "host" else 3_000  # host->QEMU runs at a few KiB/s
    garbage = bytes(rng.choice((0, 1, 2, 0xFF, rng.randrange(256))) for _ in range(size))
    before = client.stats()
    frames = raw.exchange(garbage + b"\x00", quiet=1.0, limit=60)
    nacks = _nacks(frames)
    assert nacks and all(n.code in (NackCode.BAD_FRAME, NackCode.BAD_CRC) for n in nacks)
    after = client.stats()
    assert after.nacks - before.nacks >= len(nacks)
    assert after.bad_cobs + after.bad_crc + after.oversize > (
        before.bad_cobs + before.bad_crc + before.oversize)
    info = client.hello()
    assert (info.head_version, info.head_sha256) == (3, head_sha256(w, b))


def test_bad_requests_are_refused_with_their_codes(client: DeviceClient,
                                                   device: VirtualDevice,
                                                   replay: ReplayData) -> None:
    client.hello()
    raw = RawLink(client)
    before = client.stats()
    # Unknown types, device->host types sent to the device, AUTH to a device not enrolled.
    for msg_type, flags, code in [(0x7F, 0, NackCode.UNKNOWN_TYPE),
                                  (MsgType.RESULT, 0, NackCode.UNKNOWN_TYPE),
                                  (MsgType.HELLO, fr.FLAG_AUTH, NackCode.NOT_ENROLLED)]:
        auth = bytes(fr.AUTH_SIZE) if flags else b""
        wire = fr.encode_frame(fr.Frame(msg_type, b"", client.device_id, 950, flags, auth=auth))
        assert [(n.ack_seq, n.code) for n in _nacks(raw.exchange(wire))] == [(950, code)]
    # A frame for another device is ignored.
    other = fr.encode_frame(fr.Frame(MsgType.HELLO, b"", client.device_id ^ 0x1, 951))
    assert raw.exchange(other) == []
    # Wrong payload lengths.
    assert _nacks(raw.exchange(raw.frame(MsgType.HELLO, b"xyz", 952)))[0].code == (
        NackCode.BAD_LENGTH)
    assert _nacks(raw.exchange(raw.frame(MsgType.TRAIN, bytes(47), 953)))[0].code == (
        NackCode.BAD_LENGTH)
    window = replay.windows[0].tobytes()
    _expect_nack(client, m.Sample(1, 0, len(window) + 1, window), NackCode.BAD_LENGTH,
                 MsgType.RESULT)
    _expect_nack(client, m.Sample(1, 0, len(window) - 1, window[:-1]), NackCode.SHAPE,
                 MsgType.RESULT)
    _expect_nack(client, m.Sample(1, 200, len(window), window), NackCode.BAD_PARAM,
                 MsgType.RESULT)
    # TRAIN and UPDATE_GET without data, with bad parameters.
    _expect_nack(client, m.Train(1, flags=m.TRAIN_USE_SEED), NackCode.NO_DATA)
    _expect_nack(client, m.UpdateGet(1, 0, 100), NackCode.NO_DATA, MsgType.UPDATE_CHUNK)
    client.sample(window, int(replay.labels[0]))
    for bad, code in [(m.Train(1, lr=float("nan"), flags=1), NackCode.NONFINITE),
                      (m.Train(1, lr=-1.0, flags=1), NackCode.BAD_PARAM),
                      (m.Train(1, batch=0, flags=1), NackCode.BAD_PARAM),
                      (m.Train(1, bits=12, flags=1), NackCode.BAD_PARAM),
                      (m.Train(1, scale=0.0, flags=1), NackCode.BAD_PARAM),
                      (m.Train(1, noise_std=float("inf"), flags=1), NackCode.NONFINITE)]:
        _expect_nack(client, bad, code)
    client.train(m.Train(4, flags=m.TRAIN_USE_SEED, seed=1))
    ready = client.wait_update_ready(4, timeout=30)
    _expect_nack(client, m.UpdateGet(5, 0, 100), NackCode.BAD_STATE, MsgType.UPDATE_CHUNK)
    _expect_nack(client, m.UpdateGet(4, ready.total_len + 1, 100), NackCode.BAD_PARAM,
                 MsgType.UPDATE_CHUNK)
    delta = _stats_delta(before, client.stats())
    assert delta["unknown_type"] == 2
    assert delta["nacks"] == 3 + 2 + 3 + 2 + 6 + 2
    assert client.hello().examples == 1


def test_hostile_models_never_replace_the_installed_head(client: DeviceClient,
                                                          replay: ReplayData) -> None:
    w, b = replay.w * 0.25, replay.b
    client.install_head(w, b, version=40)
    before = client.stats()
    good = head_blob(w * 2, b)
    d, c = replay.w.shape
    # Wrong D, C or total length.
    _expect_nack(client, _model_begin(replay, good, 41, d=d + 1), NackCode.SHAPE)
    _expect_nack(client, _model_begin(replay, good, 41, c=c - 1), NackCode.SHAPE)
    _expect_nack(client, _model_begin(replay, good, 41, total=len(good) - 4), NackCode.SHAPE)
    # NaN and Inf, with a matching hash, are refused at commit.
    for bad_value in (np.nan, np.inf, -np.inf):
        w_bad = (w * 2).copy()
        w_bad[3, 1] = bad_value
        _send_blob(client, replay, head_blob(w_bad, b), 41, NackCode.NONFINITE)
    # Hash mismatch, incomplete commit, chunks without a transfer or with gaps.
    client.request(m.ModelBegin(42, len(good), d, c, bytes(32)), expect=MsgType.ACK)
    client.request(m.ModelChunk(42, 0, good), expect=MsgType.ACK)
    _expect_nack(client, m.ModelCommit(42), NackCode.BAD_HASH)
    _expect_nack(client, m.ModelChunk(42, 0, good[:10]), NackCode.BAD_STATE)
    client.request(_model_begin(replay, good, 43), expect=MsgType.ACK)
    client.request(m.ModelChunk(43, 0, good[:100]), expect=MsgType.ACK)
    _expect_nack(client, m.ModelCommit(43), NackCode.INCOMPLETE)
    _expect_nack(client, m.ModelChunk(43, 200, good[200:300]), NackCode.BAD_STATE)
    _expect_nack(client, m.ModelChunk(43, 100, good[100:] + b"x"), NackCode.BAD_LENGTH)
    # Retransmission: same bytes are acknowledged again, different bytes refused.
    ack = client.request(m.ModelChunk(43, 50, good[50:150]), expect=MsgType.ACK)
    assert m.Ack.unpack(ack.payload).value == 150
    _expect_nack(client, m.ModelChunk(43, 120, b"\x00" * 40), NackCode.MISMATCH)
    delta = _stats_delta(before, client.stats())
    assert delta["models_rejected"] == 3 + 3 + 1  # shape, non-finite, hash
    # shape 3, non-finite 3, hash, chunk without transfer, incomplete, gap, overrun, mismatch
    assert delta["nacks"] == 3 + 3 + 6
    assert "models_installed" not in delta
    # A reset in the middle of a transfer leaves the committed head in place.
    client.reset(wait_boot=10)
    info = client.hello()
    assert (info.head_version, info.head_sha256) == (40, head_sha256(w, b))
    _expect_nack(client, m.ModelCommit(43), NackCode.BAD_STATE)  # the transfer is gone
