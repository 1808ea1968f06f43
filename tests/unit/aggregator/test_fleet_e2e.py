"""8 host-firmware devices, 10 rounds through 5 % corruption + 5 % drops (both directions):
every round's new head is the mean of exactly the updates the devices hold — nothing lost,
nothing counted twice — and each stored update equals the device's bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.firmware import build_host_firmware
from tools.aggregator.config import AggregatorConfig
from tools.aggregator.core import Aggregator
from tools.aggregator.store import Store
from tools.fleet.launch import host_fleet
from tools.link.client import DeviceClient
from tools.link.faults import FaultPlan, FaultyTransport
from tools.link.transport import open_transport

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "build/model/watch"
PLAN = FaultPlan(drop=0.05, corrupt=0.05)


def test_faulty_links_lose_nothing_and_count_nothing_twice(tmp_path: Path) -> None:
    firmware = build_host_firmware("replay")  # the ASan/UBSan build, from the trained model's C
    data = np.load(MODEL / "devices.npz")
    head = np.load(MODEL / "head_init.npz")
    with host_fleet(firmware, 8, first_id=1) as devices:
        faulty = [
            FaultyTransport(open_transport(d.url), PLAN, seed=i) for i, d in enumerate(devices)
        ]
        clients = [DeviceClient(t, timeout=0.5, retries=30) for t in faulty]
        store = Store(tmp_path / "agg.sqlite")
        try:
            for index, client in enumerate(clients):
                rows = np.flatnonzero(data["device"] == index % len(data["device_name"]))[:12]
                for row in rows:
                    client.sample(data["x"][row].ravel(), int(data["y"][row]))
            aggregator = Aggregator(
                store,
                AggregatorConfig(deadline_s=20, lr=0.1, simulation=True),
                clients,
                (head["w"], head["b"]),
            )
            for round_id in range(1, 11):
                before = np.concatenate([aggregator.w.ravel(), aggregator.b]).astype(np.float64)
                record = aggregator.run_round()
                assert record.metrics["accepted"] == 8, record.metrics
                accepted = store.updates(round_id, accepted_only=True)
                assert sorted(u.device_id for u in accepted) == list(range(1, 9))
                held = {c.device_id: c.fetch_update(round_id, timeout=5) for c in clients}
                for update in accepted:  # what was stored is what the device holds
                    assert update.q == held[update.device_id].data
                mean = np.mean([held[i].delta.astype(np.float64) for i in held], axis=0)
                after = np.concatenate([aggregator.w.ravel(), aggregator.b])
                assert np.allclose(after, before + mean, atol=1e-6)
            assert store.integrity_check() == []
        finally:
            store.close()
            for client in clients:
                client.close()
    injected = sum(sum(t.counts.values()) for t in faulty)
    assert injected > 50  # the faults really happened
