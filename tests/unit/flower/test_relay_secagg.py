"""SecAgg through gateway bridges on production boards, without Flower's processes: the
ServerApp's `RelayedExchange` (tools/flower/relay.py) over in-process `Bridge`s, each owning the
pty of a production host board (ASan/UBSan, sensor data) enrolled with one store.

Before the SecAgg round the test fetches each board's update over the same sealed relay (a
board hands out its update until the SECAGG_SETUP of that round): the opened updates. Checked:
the SecAgg sum is exactly their sum; board 3's bridge is stopped after the forward step (its
gateway died) and the survivors' sum is recovered through its shares; every SecAgg frame the
bridges relayed is sealed and no board's update appears in the relayed traffic. The Flower
path of the same exchange is tests/unit/flower/test_flower_secagg.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.cbuild import SANITIZER_ENV
from tests.support.firmware import build_host_firmware
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import RoundEngine
from tools.aggregator.keys import KeyStore
from tools.aggregator.provision import provision_client
from tools.aggregator.store import Store
from tools.fleet import VirtualDevice, start_host_device, write_sensor_file
from tools.flower.bridge import Bridge, BridgeError, request, unb64
from tools.flower.client_app import bridge_relay_request
from tools.flower.relay import Batch, RelayedExchange, RelayedLink, relay_record
from tools.link.client import DeviceClient, FetchedUpdate
from tools.link.frame import FLAG_AUTH, decode_frame
from tools.link.messages import MsgType
from tools.secagg.server import SecAggRound

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
    data = np.load(MODEL / "devices.npz")
    firmware = build_host_firmware("production")
    devices = []
    for device_id in BOARDS:
        rows = np.flatnonzero(data["device"] == device_id)[:16]
        sensor = write_sensor_file(tmp_path / f"sensor{device_id}.bin", data["x"][rows],
                                   data["y"][rows])  # fmt: skip
        devices.append(
            start_host_device(firmware, device_id, tmp_path, env=SANITIZER_ENV, sensor_path=sensor)
        )
    return devices


def test_secagg_over_bridges_sums_production_boards_exactly_and_recovers_a_dead_gateway(
    tmp_path: Path,
) -> None:
    head = np.load(MODEL / "head_init.npz")
    devices = _boards(tmp_path)
    bridges: dict[int, Bridge] = {}
    store = Store(tmp_path / "agg.sqlite")
    try:
        for device in devices:
            with DeviceClient.open(device.url, timeout=5.0) as client:
                provision_client(client, store)
        keys = KeyStore(store.conn)
        links = {
            d: RelayedLink(d, keys.device_key(d).public_key, keys.server_secret()) for d in BOARDS
        }
        for device in devices:
            socket_path = tmp_path / f"{device.device_id}.sock"
            tap = tmp_path / f"{device.device_id}.tap"
            bridges[device.device_id] = Bridge(device.url, socket_path, tap=tap).start()

        def relay(batches: dict[int, Batch]) -> dict[int, list[bytes] | str]:
            got: dict[int, list[bytes] | str] = {}
            for device_id, batch in batches.items():
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

        engine = RoundEngine(store, CONFIG, (head["w"], head["b"]))
        engine.enroll_if_empty(list(BOARDS))
        plan = engine.plan_round()
        hello = {d: link.hello_batch() for d, link in links.items()}
        infos = each(hello, lambda d, batch, wires: links[d].start(batch, wires))
        train = {
            d: links[d].train_batch(info, engine.w, engine.b, 0, plan.train, 30.0)
            for d, info in infos.items()
        }
        readies = each(train, lambda d, batch, wires: links[d].ready(batch, wires, plan.round))
        fetch = {d: links[d].fetch_batch(ready) for d, ready in readies.items()}
        opened: dict[int, FetchedUpdate] = each(  # type: ignore[assignment]
            fetch, lambda d, batch, wires: links[d].update(batch, wires, readies[d])
        )

        def gateway_dies(stage: str) -> None:
            if stage == "forward":
                bridges[GONE].stop()

        exchange = RelayedExchange(links, relay)
        result = SecAggRound(
            list(BOARDS),
            plan.round,
            threshold=2,
            q_bits=CONFIG.bits,
            n_params=engine.n_params,
            on_stage=gateway_dies,
            exchange=exchange,
        ).run()
    finally:
        for bridge in bridges.values():
            bridge.stop()
        store.close()
        for device in devices:
            device.stop()

    survivors = [d for d in BOARDS if d != GONE]
    assert result.survivors == survivors and result.dropped == [GONE]
    assert np.array_equal(result.total, np.sum([opened[d].q for d in survivors], axis=0))
    traffic = []
    for device_id in BOARDS:
        lines = (tmp_path / f"{device_id}.tap").read_text().splitlines()
        traffic += [decode_frame(bytes.fromhex(json.loads(line)["wire"])) for line in lines]
    secagg = [f for f in traffic if f.type in SECAGG]
    assert {f.type for f in secagg} == SECAGG
    assert all(f.flags & FLAG_AUTH for f in secagg), "a SecAgg frame went through in the clear"
    relayed = b"".join(f.payload for f in traffic)
    assert all(opened[d].data not in relayed for d in BOARDS), "an update in the clear"
