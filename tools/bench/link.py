"""Bytes on the wire and transfer time of one round, measured on real links.

One host board (pty) and one QEMU board (socket://) run the PlatformIO-built firmware of the
task. For each: push a global head (MODEL_BEGIN/CHUNK/COMMIT with ACKs) and pull one update
(UPDATE_GET/UPDATE_CHUNK), counting every byte that crossed the port in both directions and
the wall time of the two transfers (training time between them excluded). Seconds at a baud
rate are derived from the host board's byte counts: 10 bits per byte on an 8N1 UART.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import numpy as np

from tools import boards
from tools.aggregator.config import AggregatorConfig
from tools.demo.device_eval import provision
from tools.fleet.entropy import provision_entropy
from tools.fleet.launch import host_fleet, qemu_fleet
from tools.link import messages as m
from tools.link.client import CHUNK_BYTES, DeviceClient
from tools.link.frame import FLAG_REPLY, Frame, encode_frame

BITS_PER_BYTE_8N1 = 10
ROUND_ID = 1
CONFIG = AggregatorConfig(clip=0.5)  # the default width (8 bits), the scale rule of PRIVACY.md


def _head(task: str) -> tuple[np.ndarray, np.ndarray]:
    from model_gen import paths

    head = np.load(paths.model_dir(task) / paths.HEAD_NAME)
    rng = np.random.default_rng(0)  # a head the device does not hold yet
    return (
        (head["w"] + rng.normal(0, 0.01, head["w"].shape)).astype(np.float32),
        (head["b"] + rng.normal(0, 0.01, head["b"].shape)).astype(np.float32),
    )


def _provision(client: DeviceClient, task: str, n: int = 16) -> None:
    from model_gen import paths

    with np.load(paths.model_dir(task) / paths.DEVICES_NAME) as devices:
        x, y = devices["x"][:n], devices["y"][:n]
    provision(client, x.reshape(n, -1), y)


def _bytes(client: DeviceClient) -> int:
    t = client.transport
    return t.bytes_written + t.bytes_read


def _one_round(url: str, task: str) -> dict[str, float]:
    w, b = _head(task)
    with DeviceClient.open(url, timeout=5.0) as client:
        client.hello()
        provision_entropy(client)
        _provision(client, task)
        before, started = _bytes(client), time.perf_counter()
        client.install_head(w, b, version=1)
        model_s, model_bytes = time.perf_counter() - started, _bytes(client) - before
        client.train(
            m.Train(
                round=ROUND_ID,
                lr=0.1,
                epochs=1,
                batch=8,
                clip=CONFIG.clip,
                noise_std=0.0,
                scale=CONFIG.quant_scale,
                bits=CONFIG.bits,
            )
        )
        client.wait_update_ready(ROUND_ID, timeout=60)
        before, started = _bytes(client), time.perf_counter()
        update = client.fetch_update(ROUND_ID)
        update_s, update_bytes = time.perf_counter() - started, _bytes(client) - before
    return {
        "model_bytes": model_bytes,
        "update_bytes": update_bytes,
        "round_transfer_s": model_s + update_s,
        "update_data": update.data,
    }


def update_fetch_bytes(data: bytes) -> int:
    """Wire bytes of pulling `data` as UPDATE_GET / UPDATE_CHUNK pairs (the client's chunking),
    encoded by the link twin (byte-identical to the firmware's frames)."""
    total = 0
    for offset in range(0, len(data), CHUNK_BYTES):
        piece = data[offset : offset + CHUNK_BYTES]
        get = m.UpdateGet(ROUND_ID, offset, len(piece))
        chunk = m.UpdateChunk(ROUND_ID, offset, piece)
        total += len(encode_frame(Frame(get.TYPE, get.pack(), 1, 1)))
        total += len(encode_frame(Frame(chunk.TYPE, chunk.pack(), 1, 1, flags=FLAG_REPLY)))
    return total


def update_bytes_at(d: int, c: int, measured: bytes, measured_bytes: int, bits: int) -> int:
    """UPDATE bytes for a D x C head: the measured count plus the twin-encoded difference of
    pulling the measured values repeated to D*C + C instead of the measured ones."""
    size = (d * c + c) * bits // 8
    bigger = (measured * (size // len(measured) + 1))[:size]
    return measured_bytes + update_fetch_bytes(bigger) - update_fetch_bytes(measured)


def measure(task: str = "watch") -> dict[str, Any]:
    with ExitStack() as stack:
        host = stack.enter_context(host_fleet(boards.build("host", profile="replay"), 1))[0]
        qemu = stack.enter_context(qemu_fleet(boards.build("qemu_m4", profile="replay"), 1))[0]
        on_host = _one_round(host.url, task)
        on_qemu = _one_round(qemu.url, task)
    result: dict[str, Any] = {
        "update_bytes": on_host["update_bytes"],
        "model_bytes": on_host["model_bytes"],
    }
    for baud in (115200, 921600):
        for kind in ("update", "model"):
            seconds = on_host[f"{kind}_bytes"] * BITS_PER_BYTE_8N1 / baud
            result[f"{kind}_s_{baud}"] = round(seconds, 4)
    result["round_transfer_s_host"] = round(on_host["round_transfer_s"], 4)
    result["round_transfer_s_qemu"] = round(on_qemu["round_transfer_s"], 4)
    result["qemu_update_bytes"] = on_qemu["update_bytes"]
    result["update_bytes_64x7"] = update_bytes_at(
        64, 7, on_host["update_data"], on_host["update_bytes"], CONFIG.bits
    )
    result["update_bits"] = CONFIG.bits
    result["counted"] = (
        "bytes both directions of one MODEL push and one UPDATE pull "
        f"({CONFIG.bits}-bit values), D×C of the task's model"
    )
    return result
