"""The aggregator takes replay-profile boards only in a run declared a simulation, and its
report states each device's profile and own ledger (real host firmware, both profiles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.cbuild import SANITIZER_ENV
from tests.support.firmware import build_host_firmware, start_sensor_board
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Aggregator
from tools.aggregator.provision import provision_client
from tools.aggregator.report import write_report
from tools.aggregator.store import Store
from tools.fleet import start_host_device
from tools.link.client import DeviceClient

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "build/model/watch"


def test_replay_board_refused_unless_simulation_and_report_names_profiles(
    tmp_path: Path,
) -> None:
    data = np.load(MODEL / "devices.npz")
    head = np.load(MODEL / "head_init.npz")
    rows = np.flatnonzero(data["device"] == 0)[:20]  # the same windows as the sensor's
    production = start_sensor_board(tmp_path, 1, source_device=0, windows=20)
    replay = start_host_device(build_host_firmware("replay"), 2, tmp_path, env=SANITIZER_ENV)
    clients = [DeviceClient.open(d.url, timeout=2.0) for d in (production, replay)]
    store = Store(tmp_path / "agg.sqlite")
    try:
        provision_client(clients[0], store)  # production boards train only for their server
        for row in rows:
            clients[1].sample(data["x"][row].ravel(), int(data["y"][row]))
        # Within the production policy: local DP, z = 2, 32-bit words (no saturation).
        options = dict(privacy=PrivacyMode.LOCAL, noise_multiplier=2.0, bits=32, deadline_s=20)
        config = AggregatorConfig(**options)  # type: ignore[arg-type]
        aggregator = Aggregator(store, config, clients, (head["w"], head["b"]))
        record = aggregator.run_round()
        assert record.metrics["accepted"] == 1
        assert record.metrics["dropped"] == 1  # the replay board, refused before TRAIN
        assert 2 not in {u.device_id for u in store.updates(record.round)}
        simulation = AggregatorConfig(**options, simulation=True)  # type: ignore[arg-type]
        aggregator = Aggregator(store, simulation, clients, (aggregator.w, aggregator.b))
        assert aggregator.run_round().metrics["accepted"] == 2
        report = json.loads(write_report(store, tmp_path / "report").read_text())
        assert report["device_profiles"] == {"production": 1, "replay": 1}
        assert "1 production, 1 replay" in (tmp_path / "report" / "aggregate.md").read_text()
        # The operator's store keeps each device's profile and own ledger (last INFO, before
        # round 2 trained: one release so far).
        by_id = {d["device_id"]: d for d in store.device_profiles()}
        assert (by_id[1]["profile"], by_id[2]["profile"]) == ("production", "replay")
        assert by_id[1]["device_releases"] == 1 and by_id[1]["device_epsilon_spent"] > 0
    finally:
        store.close()
        for client in clients:
            client.close()
        for device in (production, replay):
            device.stop()
