"""Secure aggregation over Flower, on loopback: a SuperLink (TLS with a generated CA, SuperNode
authentication), 4 gateways each bridging a host board enrolled with the ServerApp's store,
`--privacy distributed --secagg`, 2 rounds. Every SecAgg step is one relayed Flower message
per gateway, sealed by the ServerApp for the board and by the board for the ServerApp.

- The boards are replay-profile boards with seeded TRAIN, so a second set of fresh boards
  with the same ids and samples, trained plainly with the Flower run's heads and the
  RoundEngine's parameters, gives each device's update q (the "opened" updates).
- Round 1: the unmasked sum (its digest in the run log) is exactly Σ q of the four boards, and
  the released head is, bit for bit, what the RoundEngine releases from that sum.
- Round 2: board 3's gateway is SIGKILLed once it delivered its SECAGG_SHARES_IN (between
  the share and mask steps). The round completes with the three survivors: board 3's pairwise
  masks are removed via its shares, and the sum is exactly Σ q of the survivors. (Its head is
  not compared: with dropouts the distributed mode may add server noise, tools/aggregator/
  privacy.py.)
- The gateways' taps: every SECAGG_* request and answer they relayed is sealed; no device's
  update bytes appear anywhere in the relayed traffic; no UPDATE_CHUNK was relayed at all.
Every process is stopped by PID in finally blocks (FlowerProcess.stop, host_fleet).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.firmware import build_host_firmware
from tests.support.flower import Loopback, finished, load_samples, wait_for_run, wait_until
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Outcome, RoundEngine, device_round
from tools.aggregator.provision import provision_client
from tools.aggregator.secure import secured_sum, sum_digest
from tools.aggregator.store import Store
from tools.fleet.launch import host_fleet
from tools.flower.gateway import board_name
from tools.flower.processes import FlowerProcess
from tools.link.client import DeviceClient
from tools.link.frame import FLAG_AUTH, Frame, decode_frame
from tools.link.messages import MsgType

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "build/model/watch"
BOARDS = 4
VICTIM = 3  # its gateway is killed in round 2, between the share and mask steps
CONFIG = AggregatorConfig(
    rounds=2,
    privacy=PrivacyMode.DISTRIBUTED,
    secagg=True,
    noise_multiplier=1.0,
    clip=1.0,
    lr=0.1,
    bits=8,
    deadline_s=20.0,
    train_seed=11,
    simulation=True,  # replay boards (host windows, seeded TRAIN) take part
)
SECAGG_REQUESTS = {
    MsgType.SECAGG_SETUP,
    MsgType.SECAGG_PEERS,
    MsgType.SECAGG_SHARES_IN,
    MsgType.SECAGG_MASK,
    MsgType.SECAGG_UNMASK,
}
SECAGG_ANSWERS = {
    MsgType.SECAGG_KEYS,
    MsgType.SECAGG_SHARES,
    MsgType.SECAGG_MASKED,
    MsgType.SECAGG_REVEAL,
}

pytestmark = pytest.mark.timeout(600)


def _tapped(tap: Path) -> list[tuple[str, Frame]]:
    if not tap.exists():
        return []
    lines = [json.loads(line) for line in tap.read_text().splitlines() if line.strip()]
    return [(line["to"], decode_frame(bytes.fromhex(line["wire"]))) for line in lines]


def _shares_delivered(tap: Path) -> int:
    return sum(1 for to, f in _tapped(tap) if to == "device" and f.type == MsgType.SECAGG_SHARES_IN)


def _opened_updates(
    firmware: Path, heads: dict[int, tuple[np.ndarray, np.ndarray]], work: Path
) -> list:
    """Fresh boards with the same ids and samples, trained plainly with the Flower run's heads
    and the RoundEngine's TRAIN parameters: each device's q per round, and the heads the
    RoundEngine releases from the exact sums (round 2 without the victim)."""
    head = np.load(MODEL / "head_init.npz")
    q: dict[int, dict[int, bytes]] = {}
    released = {}
    reference = Store(work / "reference.sqlite")
    with host_fleet(firmware, BOARDS, first_id=1) as devices:
        load_samples(devices, MODEL)
        clients = [DeviceClient.open(d.url, timeout=2.0, retries=5) for d in devices]
        try:
            engine = RoundEngine(reference, CONFIG, (head["w"], head["b"]))
            engine.enroll_if_empty([d.device_id for d in devices])
            for round_id in (1, 2):
                plan = engine.plan_round()
                deadline = time.monotonic() + CONFIG.deadline_s
                q[round_id] = {}
                for client in clients:
                    result = device_round(
                        client, engine.w, engine.b, engine.head_version, plan.train, deadline
                    )
                    assert result.update is not None, result.error
                    q[round_id][result.update.device_id] = result.update.data
                in_sum = [d for d in sorted(q[round_id]) if round_id == 1 or d != VICTIM]
                total = np.sum(
                    [np.frombuffer(q[round_id][d], np.int8).astype(np.int64) for d in in_sum],
                    axis=0,
                )
                secured = secured_sum(total, plan.train.scale, [], len(in_sum))
                outcomes = [Outcome(d) for d in plan.selected]
                engine.finish_round(plan, outcomes, secured)
                released[round_id] = reference.head(round_id)
                # the next round trains on the Flower run's head
                engine.w, engine.b = heads[round_id]
        finally:
            for client in clients:
                client.close()
            reference.close()
    return [q, released]


def test_secagg_rounds_over_flower_release_the_exact_sum_and_survive_a_killed_gateway(
    tmp_path: Path,
) -> None:
    firmware = build_host_firmware("replay")
    flower_store, taps = tmp_path / "flower.sqlite", tmp_path / "taps"
    gateways: dict[int, FlowerProcess] = {}
    with host_fleet(firmware, BOARDS, first_id=1) as devices:
        load_samples(devices, MODEL)
        store = Store(flower_store)
        try:
            for device in devices:
                with DeviceClient.open(device.url, timeout=5.0) as client:
                    provision_client(client, store)  # `invoke provision` against the store
        finally:
            store.close()
        loopback = Loopback(tmp_path, [d.url for d in devices])
        work = loopback.work
        runner, outcome = loopback.aggregate(
            CONFIG, BOARDS, flower_store, MODEL / "head_init.npz", slack_s=10.0
        )
        try:
            wait_for_run(work)
            gateways.update(loopback.gateways(devices, taps))
            victim_tap = taps / f"{board_name(devices[VICTIM - 1].url)}.tap"
            wait_until(
                lambda: _shares_delivered(victim_tap) >= 2 or "error" in outcome,
                300,
                "round 2's SECAGG_SHARES_IN at the victim's board",
            )
            assert "error" not in outcome, outcome.get("error")
            gateways[VICTIM].kill()  # the gateway, its SuperNode, ClientApp and bridge: SIGKILL
            runner.join(400)
        finally:
            for gateway in gateways.values():
                gateway.stop()
            runner.join(60)
    finished(outcome)

    flower = Store(flower_store)
    try:
        rounds = {r["round"]: r for r in flower.rounds()}
        assert [rounds[r]["outcome"] for r in (1, 2)] == ["released", "released"], rounds
        in_sum = {r: {u.device_id for u in flower.updates(r, accepted_only=True)} for r in (1, 2)}
        assert in_sum == {1: {1, 2, 3, 4}, 2: {1, 2, 4}}, rounds
        assert rounds[2]["metrics"]["dropped"] == 1
        heads = {r: flower.head(r) for r in (1, 2)}
        stored = b"".join(u.q for r in (1, 2) for u in flower.updates(r))
        assert flower.integrity_check() == []
    finally:
        flower.close()
    run_log = (work / "logs" / "run.log").read_text()
    assert "round 2: SecAgg sum of 3 boards, 1 dropped out after sharing" in run_log, run_log

    q, released = _opened_updates(firmware, heads, tmp_path)
    digests = dict(re.findall(r"round (\d): sum sha256 ([0-9a-f]{16})", run_log))
    for r, in_sum in ((1, [1, 2, 3, 4]), (2, [1, 2, 4])):
        total = np.sum([np.frombuffer(q[r][d], np.int8).astype(np.int64) for d in in_sum], 0)
        assert digests[str(r)] == sum_digest(total), f"round {r}: the sum is not Σ q"
    assert heads[1][0].tobytes() == released[1][0].tobytes(), "head 1 W differs"
    assert heads[1][1].tobytes() == released[1][1].tobytes(), "head 1 b differs"

    relayed: list[tuple[str, Frame]] = []
    for device in devices:
        relayed += _tapped(taps / f"{board_name(device.url)}.tap")
    secagg = [f for _, f in relayed if f.type in SECAGG_REQUESTS | SECAGG_ANSWERS]
    assert {f.type for f in secagg} == SECAGG_REQUESTS | SECAGG_ANSWERS
    assert all(f.flags & FLAG_AUTH for f in secagg), "a SecAgg frame went through in the clear"
    assert not any(f.type == MsgType.UPDATE_CHUNK for _, f in relayed)
    payloads = b"".join(f.payload for _, f in relayed)
    for r, updates in q.items():
        for device_id, data in updates.items():
            assert data not in payloads, f"device {device_id}'s round {r} update in the clear"
            assert data not in stored, f"the store holds device {device_id}'s round {r} update"
