"""Aggregator figures: validated + aggregated updates per second (one core), and the wall time
of one round with 32 host-firmware devices."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.aggregator.config import AggregatorConfig
from tools.aggregator.core import Aggregator
from tools.aggregator.strategy import combine
from tools.aggregator.validation import Expected
from tools.link.client import FetchedUpdate
from tools.link.frame import crc32
from tools.link.messages import UpdateReady

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {"64x7": (64, 7), "256x10": (256, 10)}


def _updates(n_params: int, count: int, scale: float) -> list[FetchedUpdate]:
    rng = np.random.default_rng(0)
    out = []
    for device in range(count):
        v = rng.normal(size=n_params)
        q = np.round(v / np.linalg.norm(v) * 0.9 / scale).astype("<i2")
        data = q.tobytes()
        ready = UpdateReady(1, 0, n_params, 16, 0, scale, 1.0, 0.0, len(data), crc32(data), 0.0)
        out.append(FetchedUpdate(ready, data, device))
    return out


def updates_per_s(d: int, c: int, count: int = 4000) -> float:
    """Validation (every rule) plus FedAvg of `count` int16 updates, single thread."""
    config = AggregatorConfig()
    scale = float(np.float32(config.quant_scale))
    n_params = d * c + c
    updates = _updates(n_params, count, scale)
    expected = Expected(1, 0, n_params, config.clip, scale, 16, 0.0)
    start = time.perf_counter()
    accepted: set[int] = set()
    deltas = []
    for update in updates:
        row, delta = Aggregator.check_update(update, expected, accepted)
        if delta is not None:
            accepted.add(row.device_id)
            deltas.append(delta)
    combine(np.stack(deltas), config, np.zeros(n_params))
    elapsed = time.perf_counter() - start
    if len(deltas) != count:
        raise RuntimeError(f"benchmark updates were rejected: {count - len(deltas)}")
    return count / elapsed


def round_s_host_devices(n: int = 32) -> float:
    """Wall time of one aggregator round (HELLO, head push, TRAIN, fetch) over n host devices."""
    import tempfile

    from tools import boards
    from tools.aggregator.store import Store
    from tools.fleet.launch import host_fleet
    from tools.link.client import DeviceClient

    firmware = boards.board("host").firmware("replay")  # built by `invoke bench` (link)
    model = ROOT / "build/model/watch"
    data, head = np.load(model / "devices.npz"), np.load(model / "head_init.npz")
    with host_fleet(firmware, n) as devices, tempfile.TemporaryDirectory() as tmp:
        clients = [DeviceClient.open(d.url) for d in devices]
        try:
            for i, client in enumerate(clients):
                for row in np.flatnonzero(data["device"] == i % len(data["device_name"]))[:10]:
                    client.sample(data["x"][row].ravel(), int(data["y"][row]))
            store = Store(Path(tmp) / "bench.sqlite")
            config = AggregatorConfig(simulation=True)  # replay-profile boards
            aggregator = Aggregator(store, config, clients, (head["w"], head["b"]))
            aggregator.run_round()  # warm-up; the timed round then pushes its new head to all
            start = time.perf_counter()
            record = aggregator.run_round()
            elapsed = time.perf_counter() - start
            store.close()
        finally:
            for client in clients:
                client.close()
    if record.metrics["accepted"] != n:
        raise RuntimeError(f"only {record.metrics['accepted']} of {n} updates accepted")
    return elapsed


def measure(task: str = "watch") -> dict[str, Any]:
    return {
        "updates_per_s": {name: updates_per_s(d, c) for name, (d, c) in SHAPES.items()},
        "round_s_32_host_devices": round_s_host_devices(32),
    }
