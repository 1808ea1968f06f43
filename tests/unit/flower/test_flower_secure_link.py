"""A production board behind a Flower gateway: the authenticated link ends in the ServerApp.

A production host board (sensor file, no replay features) is enrolled with the ServerApp's
store (`provision_client`, as `invoke provision` against the central store), then trains two
rounds through a SuperLink (TLS with a generated CA, SuperNode authentication) and one gateway
on loopback. The gateway's tap records every frame it relayed. Checked:

- every model/TRAIN/UPDATE_GET frame the gateway carried was sealed by the ServerApp, and every
  UPDATE_READY / UPDATE_CHUNK sealed by the device; the update bytes the store accepted appear
  nowhere in the relayed traffic;
- opening the relayed frames needs the server key: with the store's key they open (ENROLL_INFO,
  relayed in the clear, gives the session nonce) to exactly the accepted update; with another
  key they do not;
- the released heads equal what the built-in RoundEngine releases for the same device updates.
Every process is stopped by PID in finally blocks (FlowerProcess.stop, VirtualDevice.stop).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.firmware import start_sensor_board
from tests.support.flower import Loopback, finished, wait_for_run
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Outcome, RoundEngine
from tools.aggregator.keys import KeyStore
from tools.aggregator.provision import provision_client
from tools.aggregator.store import Store
from tools.flower.gateway import board_name
from tools.flower.processes import FlowerProcess
from tools.link import messages as m
from tools.link.auth import PROTECTED_REQUESTS, SEALED_UPDATES, AuthError, LinkSession
from tools.link.client import DeviceClient, FetchedUpdate
from tools.link.frame import FLAG_AUTH, Frame, decode_frame
from tools.link.messages import MsgType

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "build/model/watch"
DEVICE_ID = 5
ROUNDS = 2
# Within the production policy: local DP, z = 2, 32-bit words (as tests/unit/aggregator).
CONFIG = AggregatorConfig(
    rounds=ROUNDS, privacy=PrivacyMode.LOCAL, noise_multiplier=2.0, bits=32, deadline_s=20.0
)

pytestmark = pytest.mark.timeout(600)


def _tapped(tap: Path) -> list[tuple[str, Frame]]:
    lines = [json.loads(line) for line in tap.read_text().splitlines()]
    return [(line["to"], decode_frame(bytes.fromhex(line["wire"]))) for line in lines]


def _open_updates(traffic: list[tuple[str, Frame]], secret: bytes) -> dict[int, FetchedUpdate]:
    """What only the server key holder can do: open the device's sealed frames of each boot
    session (ENROLL_INFO travels in the clear) and join each round's chunks."""
    session, ready, data = None, {}, {}
    for to, frame in traffic:
        if to != "server":
            continue
        if frame.type == MsgType.ENROLL_INFO:
            info = m.EnrollInfo.unpack(frame.payload)
            session = LinkSession.derive(
                secret, info.device_public, DEVICE_ID, info.session_nonce, info.key_id
            )
            session.rx_counter = info.tx_counter
            continue
        if not frame.flags & FLAG_AUTH:
            continue
        assert session is not None
        plain = session.open(frame)  # AuthError for any other key
        if plain.type == MsgType.UPDATE_READY:
            r = m.UpdateReady.unpack(plain.payload)
            ready[r.round] = r
        elif plain.type == MsgType.UPDATE_CHUNK:
            chunk = m.UpdateChunk.unpack(plain.payload)
            data[chunk.round] = data.get(chunk.round, b"") + chunk.data
    return {r: FetchedUpdate(ready[r], data[r], DEVICE_ID) for r in data}


def test_production_board_trains_behind_a_gateway_that_sees_only_cipher_text(
    tmp_path: Path,
) -> None:
    head = np.load(MODEL / "head_init.npz")
    device = start_sensor_board(tmp_path, DEVICE_ID, source_device=0, windows=20)
    flower_store = tmp_path / "flower.sqlite"
    work, taps = tmp_path / "flower", tmp_path / "taps"
    gateway: FlowerProcess | None = None
    try:
        store = Store(flower_store)
        try:
            with DeviceClient.open(device.url, timeout=5.0) as client:
                provision_client(client, store)  # `invoke provision` against the central store
            secret = KeyStore(store.conn).server_secret()
        finally:
            store.close()
        loopback = Loopback(tmp_path, [device.url])
        runner, outcome = loopback.aggregate(
            CONFIG, 1, flower_store, MODEL / "head_init.npz", slack_s=15.0
        )
        try:
            wait_for_run(work)
            gateway = loopback.gateway("gateway", device.url, taps)
            runner.join(400)
        finally:
            if gateway is not None:
                gateway.stop()
            runner.join(60)
    finally:
        device.stop()
    finished(outcome)

    store = Store(flower_store)
    try:
        rounds = {r["round"]: r for r in store.rounds()}
        accepted = {r: store.updates(r, accepted_only=True) for r in range(1, ROUNDS + 1)}
        assert all(len(accepted[r]) == 1 for r in accepted), {
            r: v["metrics"] for r, v in rounds.items()
        }
        heads = {r: store.head(r) for r in range(1, ROUNDS + 1)}
        assert store.integrity_check() == []
    finally:
        store.close()

    traffic = _tapped(taps / f"{board_name(device.url)}.tap")
    to_device = [f for to, f in traffic if to == "device" and f.type in PROTECTED_REQUESTS]
    from_device = [f for to, f in traffic if to == "server" and f.type in SEALED_UPDATES]
    assert {f.type for f in to_device} >= {MsgType.TRAIN, MsgType.MODEL_BEGIN, MsgType.UPDATE_GET}
    assert all(f.flags & FLAG_AUTH for f in to_device + from_device)
    assert {f.type for f in from_device} == {MsgType.UPDATE_READY, MsgType.UPDATE_CHUNK}
    relayed = b"".join(f.payload for _, f in traffic)
    for r in accepted:
        assert accepted[r][0].q and accepted[r][0].q not in relayed, f"round {r} in the clear"

    opened = _open_updates(traffic, secret)
    assert {r: u.data for r, u in opened.items()} == {r: accepted[r][0].q for r in accepted}
    with pytest.raises(AuthError):
        _open_updates(traffic, bytes(range(32)))

    # The built-in engine's round logic on the same device updates releases the same heads.
    reference = Store(tmp_path / "reference.sqlite")
    try:
        engine = RoundEngine(reference, CONFIG, (head["w"], head["b"]))
        engine.enroll_if_empty([DEVICE_ID])
        for r in range(1, ROUNDS + 1):
            plan = engine.plan_round()
            engine.finish_round(plan, [Outcome(DEVICE_ID, opened[r])])
            w, b = reference.head(r)
            assert w.tobytes() == heads[r][0].tobytes() and b.tobytes() == heads[r][1].tobytes()
    finally:
        reference.close()
