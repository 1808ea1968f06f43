"""fedhead on Flower, on loopback: a SuperLink (TLS with a CA made by tools/flower/tls, SuperNode
authentication), 4 gateways each bridging a host virtual board, the ServerApp running fedhead's
rounds.

- Rounds 1–3 release exactly the heads (bit for bit) and store exactly the update bytes of the
  built-in engine on fresh boards with the same ids, samples, seeded TRAIN and local DP noise:
  all randomness is the devices' (seeded ChaCha20 in the replay build), so nothing may differ.
- Round 4: board 3's gateway is SIGKILLed once its SuperNode received the TRAIN message; the
  round commits without it (a dropout) and the other three updates are accepted.
- The gateway is restarted at once (same key, so the same node id). Flower lets that node in
  again only once the SuperLink has counted its killed session offline (two missed 30 s
  heartbeats); until then the gateway retries. Board 3 must be accepted again by round 8.
Every process is stopped by PID in finally blocks (FlowerProcess.stop, host_fleet).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.firmware import build_host_firmware
from tests.support.flower import Loopback, finished, load_samples, wait_for_run, wait_until
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Aggregator
from tools.aggregator.store import Store
from tools.fleet.launch import VirtualDevice, host_fleet
from tools.flower.gateway import board_name
from tools.flower.processes import FlowerProcess
from tools.link.client import DeviceClient

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "build/model/watch"
BOARDS = 4
VICTIM = 3  # the board whose gateway is killed in round 4
CONFIG = AggregatorConfig(
    rounds=8,
    privacy=PrivacyMode.LOCAL,
    noise_multiplier=0.5,
    clip=1.0,
    lr=0.1,
    deadline_s=10.0,
    train_seed=7,
    simulation=True,  # replay boards (host windows, seeded TRAIN) take part
)

pytestmark = pytest.mark.timeout(600)


def _builtin_engine(firmware: Path, store_path: Path, rounds: int) -> None:
    head = np.load(MODEL / "head_init.npz")
    with host_fleet(firmware, BOARDS, first_id=1) as devices:
        load_samples(devices, MODEL)
        clients = [DeviceClient.open(d.url, timeout=2.0, retries=5) for d in devices]
        store = Store(store_path)
        try:
            Aggregator(store, CONFIG, clients, (head["w"], head["b"])).run(rounds)
        finally:
            store.close()
            for client in clients:
                client.close()


def _committed(store_path: Path) -> int:
    if not store_path.exists():
        return 0
    store = Store(store_path)
    try:
        return store.last_round()
    finally:
        store.close()


def _trains_received(work: Path, device: VirtualDevice) -> int:
    log = work / f"gateway-{device.device_id}" / "logs" / f"supernode-{board_name(device.url)}.log"
    return log.read_text(errors="replace").count("Receiving: train message") if log.exists() else 0


def test_flower_engine_matches_builtin_and_survives_a_killed_gateway(tmp_path: Path) -> None:
    firmware = build_host_firmware("replay")
    builtin_store = tmp_path / "builtin.sqlite"
    _builtin_engine(firmware, builtin_store, rounds=3)

    flower_store = tmp_path / "flower.sqlite"
    gateways: dict[int, FlowerProcess] = {}
    with host_fleet(firmware, BOARDS, first_id=1) as devices:
        load_samples(devices, MODEL)
        loopback = Loopback(tmp_path, [d.url for d in devices])
        work = loopback.work
        runner, outcome = loopback.aggregate(
            CONFIG, BOARDS, flower_store, MODEL / "head_init.npz", slack_s=15.0
        )
        try:
            wait_for_run(work)
            gateways.update(loopback.gateways(devices))
            victim = devices[VICTIM - 1]
            wait_until(
                lambda: _trains_received(work, victim) >= 4 or "error" in outcome,
                240,
                "round 4's TRAIN message at the victim's SuperNode",
            )
            assert "error" not in outcome, outcome.get("error")
            gateways[VICTIM].kill()  # the gateway, its SuperNode, ClientApp and bridge: SIGKILL
            gateways[VICTIM] = loopback.gateway(f"gateway-{VICTIM}", victim.url)
            runner.join(400)
        finally:
            for gateway in gateways.values():
                gateway.stop()
            runner.join(60)
    finished(outcome)

    builtin, flower = Store(builtin_store), Store(flower_store)
    try:
        for version in (1, 2, 3):
            w_builtin, b_builtin = builtin.head(version)
            w_flower, b_flower = flower.head(version)
            assert w_flower.tobytes() == w_builtin.tobytes(), f"head {version} W differs"
            assert b_flower.tobytes() == b_builtin.tobytes(), f"head {version} b differs"
            held = {u.device_id: u.q for u in builtin.updates(version, accepted_only=True)}
            got = {u.device_id: u.q for u in flower.updates(version, accepted_only=True)}
            assert got == held and len(got) == BOARDS, f"round {version} updates differ"
        rounds = {r["round"]: r for r in flower.rounds()}
        assert rounds[4]["metrics"]["dropped"] == 1, rounds[4]
        survivors = {u.device_id for u in flower.updates(4, accepted_only=True)}
        assert survivors == set(range(1, BOARDS + 1)) - {VICTIM}, rounds[4]
        back = [r for r in (5, 6, 7, 8) if rounds[r]["metrics"]["accepted"] == BOARDS]
        victim_log = (work / "logs" / f"gateway-{VICTIM}.log").read_text()[-3000:]
        assert back, ({r: rounds[r]["metrics"] for r in (5, 6, 7, 8)}, victim_log)
        assert flower.integrity_check() == []
    finally:
        builtin.close()
        flower.close()
