"""SecAgg through gateway bridges on production boards, without Flower's processes: the
engines' SecAgg round logic (secure_round → finish_round) over the ServerApp's
`RelayedExchange` (tools/flower/relay.py) and in-process `Bridge`s, each owning the pty of a
production host board (ASan/UBSan, sensor data) enrolled with one store.

- Round 1: before SecAgg the test fetches each board's update over the same sealed relay (a
  board hands it out until the SECAGG_SETUP of that round): the opened updates. Board 3's
  gateway dies when the mask step reaches it: the round is released from the two survivors,
  board 3's masks removed through its shares, and the sum is exactly theirs (its digest).
- Round 2: board 3's gateway is back; two gateways die at the mask step, one board is left
  (< t = 2): the SecAgg round aborts and nothing is released.
- Every SecAgg frame the bridges relayed is sealed; no board's update appears in the traffic.
The Flower path of the same exchange is tests/unit/flower/test_flower_secagg.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.firmware import start_sensor_board
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Outcome, RoundEngine, RoundPlan
from tools.aggregator.keys import KeyStore
from tools.aggregator.provision import provision_client
from tools.aggregator.secure import secure_round, sum_digest
from tools.aggregator.store import RoundRow, Store
from tools.fleet import VirtualDevice
from tools.flower.bridge import Bridge, BridgeError, request, unb64
from tools.flower.client_app import bridge_relay_request
from tools.flower.relay import Batch, RelayedExchange, RelayedLink, relay_record
from tools.link import messages as m
from tools.link.client import DeviceClient, FetchedUpdate
from tools.link.frame import FLAG_AUTH, decode_frame
from tools.link.messages import MsgType

MODEL = Path(__file__).resolve().parents[3] / "build/model/watch"
BOARDS = (1, 2, 3)
GONE = 3
# The production policy wants z/√m ≥ 1 per device (z_min 1) and 8/16/32-bit words.
CONFIG = AggregatorConfig(
    privacy=PrivacyMode.DISTRIBUTED, secagg=True, noise_multiplier=2.0, clip=1.0, bits=16
)
SECAGG = {
    MsgType.SECAGG_SETUP,
    MsgType.SECAGG_KEYS,
    MsgType.SECAGG_PEERS,
    MsgType.SECAGG_SHARES,
    MsgType.SECAGG_SHARES_IN,
    MsgType.SECAGG_MASK,
    MsgType.SECAGG_MASKED,
    MsgType.SECAGG_UNMASK,
    MsgType.SECAGG_REVEAL,
}


def _boards(tmp_path: Path) -> list[VirtualDevice]:
    return [start_sensor_board(tmp_path, d, source_device=d, windows=16) for d in BOARDS]


def test_secagg_over_bridges_sums_production_boards_exactly_and_recovers_a_dead_gateway(
    tmp_path: Path,
) -> None:
    head = np.load(MODEL / "head_init.npz")
    devices = _boards(tmp_path)
    bridges: dict[int, Bridge] = {}
    dying: set[int] = set()  # their gateway dies when the mask step reaches it
    store = Store(tmp_path / "agg.sqlite")
    try:
        for device in devices:
            with DeviceClient.open(device.url, timeout=5.0) as client:
                provision_client(client, store)
        keys = KeyStore(store.conn)
        links = {
            d: RelayedLink(d, keys.device_key(d).public_key, keys.server_secret()) for d in BOARDS
        }

        def start_gateway(device: VirtualDevice) -> None:
            socket_path = tmp_path / f"{device.device_id}.sock"
            tap = tmp_path / f"{device.device_id}.tap"
            bridges[device.device_id] = Bridge(device.url, socket_path, tap=tap).start()

        def relay(batches: dict[int, Batch]) -> dict[int, list[bytes] | str]:
            got: dict[int, list[bytes] | str] = {}
            for device_id, batch in batches.items():
                if device_id in dying and batch.requests[0][1] == MsgType.SECAGG_MASK:
                    bridges[device_id].stop()
                req = bridge_relay_request(relay_record(batch, reply_timeout_s=5.0))
                try:
                    reply = request(bridges[device_id].socket_path, req, timeout=60)
                except BridgeError as exc:  # the gateway is gone
                    got[device_id] = str(exc)
                    continue
                got[device_id] = reply["error"] or [unb64(t) for t in reply["frames"]]
            return got

        def each(batches: dict[int, Batch], use) -> dict[int, object]:
            wires = relay(batches)
            return {d: use(d, batches[d], wires[d]) for d in batches}

        def trained(plan: RoundPlan) -> dict[int, m.UpdateReady]:
            hello = {d: link.hello_batch() for d, link in links.items()}
            infos = each(hello, lambda d, batch, wires: links[d].start(batch, wires))
            train = {
                d: links[d].train_batch(info, engine.w, engine.b, engine.head_version,
                                        plan.train, 30.0)
                for d, info in infos.items()
            }  # fmt: skip
            return each(train, lambda d, batch, wires: links[d].ready(batch, wires, plan.round))  # type: ignore[return-value]

        def secagg(plan: RoundPlan, readies: dict[int, m.UpdateReady]) -> RoundRow:
            """The engines' SecAgg round logic (secure_round, finish_round) over the relay."""
            outcomes = [Outcome(d, FetchedUpdate(readies[d], b"", d)) for d in plan.selected]
            exchange = lambda ids: RelayedExchange({d: links[d] for d in ids}, relay)  # noqa: E731
            return engine.finish_round(plan, *secure_round(engine, plan, outcomes, exchange))

        for device in devices:
            start_gateway(device)
        events: list[tuple[str, dict]] = []
        engine = RoundEngine(
            store, CONFIG, (head["w"], head["b"]), on_event=lambda *e: events.append(e)
        )
        engine.enroll_if_empty(list(BOARDS))
        # Round 1: board 3's gateway dies after the forward step; its masks are removed.
        plan = engine.plan_round()
        readies = trained(plan)
        fetch = {d: links[d].fetch_batch(ready) for d, ready in readies.items()}
        opened: dict[int, FetchedUpdate] = each(  # type: ignore[assignment]
            fetch, lambda d, batch, wires: links[d].update(batch, wires, readies[d])
        )
        dying = {GONE}
        first = secagg(plan, readies)
        # Round 2: board 3 back; two gateways die after the forward step: one board < t = 2.
        start_gateway(devices[GONE - 1])
        dying = {1, GONE}
        second_plan = engine.plan_round()
        second = secagg(second_plan, trained(second_plan))
    finally:
        for bridge in bridges.values():
            bridge.stop()
        store.close()
        for device in devices:
            device.stop()

    survivors = [d for d in BOARDS if d != GONE]
    secagg_events = [detail for kind, detail in events if kind.startswith("secagg")]
    assert first.outcome == "released" and first.head_out == 1
    assert {u.device_id for u in first.updates if u.accepted} == set(survivors)
    assert secagg_events[0] == {
        "round": 1,
        "in_sum": 2,
        "recovered": 1,
        "sum_sha256": sum_digest(np.sum([opened[d].q for d in survivors], axis=0)),
    }
    assert second.outcome != "released" and second.head_out == second.head_in == 1
    assert "mask: 1 devices left, threshold t = 2" in secagg_events[1]["reason"]
    assert not any(u.accepted for u in second.updates)
    traffic = []
    for device_id in BOARDS:
        lines = (tmp_path / f"{device_id}.tap").read_text().splitlines()
        traffic += [decode_frame(bytes.fromhex(json.loads(line)["wire"])) for line in lines]
    secagg = [f for f in traffic if f.type in SECAGG]
    assert {f.type for f in secagg} == SECAGG
    assert all(f.flags & FLAG_AUTH for f in secagg), "a SecAgg frame went through in the clear"
    relayed = b"".join(f.payload for f in traffic)
    assert all(opened[d].data not in relayed for d in BOARDS), "an update in the clear"
