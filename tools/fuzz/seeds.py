"""Seed corpora for the fuzz targets, built with the Python twins (tools/link, tools/secagg).

decoder: wire bytes of a valid frame of every message type, plus a few broken ones.
device-*: inputs in the device harness's record format (tests/fuzz/harness/fuzz_device.c):
every host->device request alone, and short sessions (install a head, sample and train, fetch
the update, requests queued while a TRAIN runs, storage failing under CLEAR, a retried SAMPLE,
enrollment and the SecAgg requests 0x70-0x7B in the clear: a device that is not enrolled
refuses or enrolls, one that is refuses unsealed frames; the sealed paths need the key).

    python -m tools.fuzz.seeds      # rewrites tests/fuzz/corpus/<target>/seed-*
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.fuzz.build import CORPUS, TARGETS
from tools.link import frame as fr
from tools.link import messages as m
from tools.link.client import head_blob
from tools.link.messages import MsgType
from tools.secagg import wire

OP_FRAME, OP_RAW, OP_BUSY, OP_PLATFORM = 0, 1, 2, 3
STORAGE_FAILS = 0x01
APP_EXAMPLE = 0x04


def model_shape() -> tuple[int, int, int]:
    """(D, C, input length) of the model the device targets are built with."""
    from tests.support.firmware import generated_dir

    config = (generated_dir() / "model_config.h").read_text()

    def value(name: str) -> int:
        return int(re.search(rf"#define {name} (\d+)", config).group(1))  # type: ignore[union-attr]

    return value("FEDHEAD_EMBED_DIM"), value("FEDHEAD_NUM_CLASSES"), value("FEDHEAD_INPUT_LEN")


def frame_record(message: m.Message, seq: int = 1, op: int = OP_FRAME, ctl: int = 0) -> bytes:
    payload = message.pack()
    return struct.pack("<BBBHH", op, message.TYPE, ctl, seq, len(payload)) + payload


def platform_record(ctl: int) -> bytes:
    return bytes([OP_PLATFORM, ctl])


def app_example_record(label: int, window: bytes) -> bytes:
    """The application on the device adds an example (production builds get examples only so)."""
    return bytes([OP_PLATFORM, APP_EXAMPLE, label]) + window


def raw_record(data: bytes) -> bytes:
    return struct.pack("<BH", OP_RAW, len(data)) + data


@dataclass(frozen=True)
class RawMessage:
    """A frame of any type with the given payload (e.g. a device's reply sent to it)."""

    TYPE: MsgType
    payload: bytes

    def pack(self) -> bytes:
        return self.payload


def secagg_requests(round_id: int = 3) -> list:
    """One of each enrollment and SecAgg message, with well-formed payloads (PROTOCOL §6-§7):
    the host's requests, then the device's replies (which a device must refuse)."""
    key = bytes(range(32))
    peers = tuple((0x42 + k, bytes([k]) * 32, bytes([k + 1]) * 32) for k in range(3))
    share = bytes(wire.SHARE_CT_LEN)
    return [
        m.EnrollGet(),
        m.EnrollSet(key),
        m.EnrollSet(key, m.ENROLL_FORCE),
        wire.Setup(round_id, 3, 2, 20),
        wire.Peers(round_id, peers),
        wire.SharesIn(round_id, ((0x43, share), (0x44, share))),
        wire.Mask(round_id, 0, 1024, (0x42, 0x43, 0x44)),
        wire.Unmask(round_id, ((0x42, wire.SURVIVOR), (0x43, wire.DROPPED))),
        RawMessage(MsgType.ENROLL_INFO, bytes(m.EnrollInfo.FORMAT.size)),
        RawMessage(MsgType.SECAGG_KEYS, struct.pack("<I32s32s", round_id, key, key)),
        RawMessage(
            MsgType.SECAGG_SHARES, wire.LIST_HDR.pack(round_id, 1, 0) + bytes(wire.SHARE_ENTRY.size)
        ),
        RawMessage(MsgType.SECAGG_MASKED, wire.MASKED_HDR.pack(round_id, 0, 8, 20) + bytes(8)),
        RawMessage(
            MsgType.SECAGG_REVEAL,
            wire.LIST_HDR.pack(round_id, 1, 0) + bytes(wire.REVEAL_ENTRY.size),
        ),
    ]


def _window(input_len: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(-60, 60, input_len, dtype=np.int8).tobytes()


def device_seeds() -> dict[str, bytes]:
    d, c, input_len = model_shape()
    windows = [_window(input_len, k) for k in range(4)]
    labelled = [m.Sample(m.SAMPLE_LABELLED, k % c, input_len, w) for k, w in enumerate(windows)]
    w = np.random.default_rng(9).normal(0, 0.1, (d, c)).astype(np.float32)
    b = np.zeros(c, np.float32)
    blob = head_blob(w, b)
    install = [
        m.ModelBegin(5, len(blob), d, c, hashlib.sha256(blob).digest()),
        m.ModelChunk(5, 0, blob[:1000]),
        m.ModelChunk(5, 1000, blob[1000:]),
        m.ModelCommit(5),
    ]
    # Within the production policy (fedcore/policy.h): noise >= clip, scale 2^-12 * clip, and
    # epochs x capacity (256) <= 8192.
    train = m.Train(3, epochs=2, batch=2, clip=1.0, noise_std=2.0)
    singles: list[m.Message] = [
        m.Hello(),
        m.StatsGet(),
        m.Reset(),
        m.Clear(),
        m.Seed(bytes(range(32))),
        m.UpdateGet(1, 0, 64),
        m.UpdateGet(1, m.UPDATE_GET_READY_OFFSET, 0),
        train,
        m.Infer(m.INFER_WANT_EMBEDDING, 0, input_len, windows[0]),
        labelled[0],
        *install,
    ]
    seeds = {
        f"single-{k:02d}-{msg.TYPE.name.lower()}": frame_record(msg, seq=k + 1)
        for k, msg in enumerate(singles)
    }
    session = b"".join(frame_record(msg, seq=k + 1) for k, msg in enumerate(labelled))
    fetch = [
        m.UpdateGet(3, m.UPDATE_GET_READY_OFFSET, 0),
        m.UpdateGet(3, 0, 256),
        m.UpdateGet(3, 256, 2040),
    ]
    seeds["session-install"] = b"".join(frame_record(x, seq=k + 1) for k, x in enumerate(install))
    seeds["session-train-fetch"] = (
        session
        + frame_record(train, seq=20)
        + b"".join(frame_record(x, seq=21 + k) for k, x in enumerate(fetch))
    )
    app = b"".join(app_example_record(k % c, w) for k, w in enumerate(windows))
    seeds["session-app-examples-train"] = (
        app
        + frame_record(train, seq=80)
        + b"".join(frame_record(x, seq=81 + k) for k, x in enumerate(fetch))
        + frame_record(train, seq=85)  # the same round again: the same bytes
        + frame_record(m.Reset(), seq=86)
        + frame_record(m.Train(9, epochs=1, clip=1.0, noise_std=2.0), seq=87)
    )
    seeds["session-train-seeded"] = (
        session
        + frame_record(m.Seed(bytes(32)), seq=30)
        + frame_record(
            m.Train(4, epochs=1, clip=1.0, noise_std=2.0, flags=m.TRAIN_USE_SEED, seed=7), seq=31
        )
    )
    busy = [m.Hello(), m.StatsGet(), labelled[1], m.Clear(), m.Reset()]
    seeds["session-busy-while-training"] = (
        session
        + app
        + b"".join(frame_record(x, seq=40 + k, op=OP_BUSY) for k, x in enumerate(busy))
        + frame_record(m.Train(6, epochs=32, batch=1, clip=1.0, noise_std=2.0), seq=50)
    )
    seeds["session-storage-fails"] = (
        session
        + frame_record(train, seq=60)
        + platform_record(STORAGE_FAILS)
        + frame_record(m.Clear(), seq=61)
        + frame_record(train, seq=62)
        + (b"".join(frame_record(x, seq=63 + k) for k, x in enumerate(install)))
    )
    seeds["session-sample-retry"] = frame_record(labelled[2], seq=70) * 2 + frame_record(
        labelled[2], seq=71
    )
    seeds["session-raw-bytes"] = raw_record(fr.encode_frame(fr.Frame(MsgType.HELLO)) + b"\x00\x01")
    for k, msg in enumerate(secagg_requests()):
        seeds[f"secagg-{k:02d}-{msg.TYPE.name.lower()}"] = frame_record(msg, seq=100 + k)
    enroll_then_round = [m.EnrollGet(), m.EnrollSet(bytes(range(32))), *secagg_requests()[3:8]]
    seeds["session-enroll-secagg"] = (
        session
        + frame_record(train, seq=110)
        + b"".join(frame_record(x, seq=111 + k) for k, x in enumerate(enroll_then_round))
    )
    return seeds


def decoder_seeds() -> dict[str, bytes]:
    payloads = {
        t: bytes((k * 7) % 256 for k in range(n))
        for t, n in (
            (MsgType.HELLO, 0),
            (MsgType.INFO, m.Info.FORMAT.size),
            (MsgType.ACK, 8),
            (MsgType.NACK, 8),
            (MsgType.TRAIN, 48),
            (MsgType.MODEL_CHUNK, 300),
            (MsgType.SAMPLE, 604),
            (MsgType.UPDATE_CHUNK, 2048),
        )
    }
    seeds = {
        f"frame-{t.name.lower()}": fr.encode_frame(fr.Frame(t, p, 0x42, 9))
        for t, p in payloads.items()
    }
    for msg in secagg_requests():
        seeds[f"frame-{msg.TYPE.name.lower()}"] = fr.encode_frame(
            fr.Frame(msg.TYPE, msg.pack(), 0x42, 9)
        )
    seeds["frame-auth"] = fr.encode_frame(
        fr.Frame(MsgType.HELLO, b"", 0x42, 3, fr.FLAG_AUTH, 1, auth=bytes(fr.AUTH_SIZE))
    )
    body = fr.frame_to_raw(fr.Frame(MsgType.HELLO, b"", 0x42, 4))
    seeds["broken-crc"] = fr.cobs_encode(body[:-1] + b"\x55") + b"\x00"
    seeds["text-then-frame"] = b"boot: ok\r\n" + fr.encode_frame(fr.Frame(MsgType.LOG, b"\x01hi"))
    return seeds


def write_seeds() -> dict[str, int]:
    """Rewrite the seed files of every target; returns the count per target."""
    counts: dict[str, int] = {}
    for target in TARGETS:
        seeds = decoder_seeds() if target == "decoder" else device_seeds()
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)
        counts[target] = len(seeds)
    return counts


if __name__ == "__main__":
    for name, count in write_seeds().items():
        print(f"{name}: {count} seeds in {Path(CORPUS / name).relative_to(CORPUS.parents[2])}")
