"""`invoke simulate --engine flower` on a small federation: Flower's simulation runtime (Ray)
starts one virtual SuperNode per watch client, each ClientApp trains and privatizes its own
client's head, and the ServerApp's rounds learn and spend ε as the accountant says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tools.fleet.simulator import SimConfig
from tools.flower.simulation import run_flower_simulation


@pytest.mark.slow  # Ray start-up dominates: about 75 s
@pytest.mark.timeout(900)
def test_every_client_is_a_virtual_supernode(tmp_path: Path) -> None:
    config = SimConfig(
        task="watch", rounds=2, cohort=5, noise_multipliers=(1.0,), modes=("central",)
    )
    report = json.loads(run_flower_simulation(config, tmp_path).read_text())
    assert report["engine"] == "flower"
    assert report["virtual_supernodes"] == report["config"]["clients"] >= 5
    (curve,) = report["curves"]
    assert sum(curve["received_by_round"]) > 0
    assert all(math.isfinite(a) for a in curve["accuracy_by_round"])
    assert 0 < curve["epsilon_by_round"][0] < curve["epsilon_by_round"][1]
    assert (tmp_path / "simulate.png").exists()
