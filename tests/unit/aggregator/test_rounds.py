"""Rounds end to end over real ptys: the new head is exactly the mean of what was sent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.link.peer import PyPeer, peer_delta_q
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Aggregator
from tools.aggregator.evaluate import Holdout
from tools.aggregator.store import Store
from tools.link.client import DeviceClient, head_sha256
from tools.link.messages import MsgType

W0 = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
B0 = np.zeros(3, dtype=np.float32)


def _aggregator(tmp_path: Path, peers: list[PyPeer], **options: object) -> Aggregator:
    config = AggregatorConfig(**{"deadline_s": 5.0, **options})  # type: ignore[arg-type]
    clients = [DeviceClient.open(p.path, timeout=0.5) for p in peers]
    holdout = Holdout(np.eye(4, dtype=np.float32), np.array([0, 1, 2, 0]))
    return Aggregator(Store(tmp_path / "agg.sqlite"), config, clients, (W0, B0), holdout)


def _close(aggregator: Aggregator) -> None:
    for client in aggregator.devices:
        client.close()
    aggregator.store.close()


def test_three_rounds_head_equals_mean_of_sent_updates(tmp_path: Path, peers: list[PyPeer]) -> None:
    peers[0].head_sha256 = head_sha256(W0, B0)  # already holds the head: must not get a push
    aggregator = _aggregator(tmp_path, peers)
    try:
        w, b = W0.astype(np.float64), B0.astype(np.float64)
        for round_id in (1, 2, 3):
            record = aggregator.run_round()
            scale = np.float32(aggregator.config.quant_scale)
            sent = [peer_delta_q(p.device_id, round_id, 15, 16, 1.0, scale) for p in peers]
            mean = np.mean([q.astype(np.float32) * scale for q in sent], axis=0)
            w, b = w + mean[:12].reshape(4, 3), b + mean[12:]
            assert record.metrics["accepted"] == 3 and record.head_out == round_id
            assert np.allclose(aggregator.w, w, atol=1e-6)
            assert np.allclose(aggregator.b, b, atol=1e-6)
            assert 0.0 <= record.metrics["holdout_accuracy"] <= 1.0
        assert aggregator.store.integrity_check() == []
        pushes = [sum(f.type == MsgType.MODEL_BEGIN for f in p.received) for p in peers]
        assert pushes == [2, 3, 3]  # peer 0 had head 0; every new head goes to everyone
    finally:
        _close(aggregator)


def test_hostile_and_silent_devices_are_recorded_not_aggregated(
    tmp_path: Path, peers: list[PyPeer]
) -> None:
    peers[1].hostile = "huge_norm"
    peers[2].hostile = "wrong_shape"
    aggregator = _aggregator(tmp_path, peers)
    try:
        record = aggregator.run_round()
        scale = np.float32(aggregator.config.quant_scale)
        only = peer_delta_q(peers[0].device_id, 1, 15, 16, 1.0, scale).astype(np.float32) * scale
        assert np.allclose(aggregator.b, B0 + only[12:], atol=1e-6)
        rows = {u.device_id: u for u in aggregator.store.updates(1)}
        assert rows[101].reason.startswith("norm") and not rows[101].accepted
        assert rows[102].reason.startswith("shape") and rows[102].q is None
        assert record.metrics["accepted"] == 1
    finally:
        _close(aggregator)


def test_dropout_after_deadline_and_resume(tmp_path: Path, peers: list[PyPeer]) -> None:
    peers[2].train_delay_s = 3.0  # answers after the 1 s deadline: a dropout
    aggregator = _aggregator(
        tmp_path,
        peers,
        deadline_s=1.0,
        privacy=PrivacyMode.CENTRAL,
        noise_multiplier=2.0,
        population=10,
    )
    try:
        record = aggregator.run_round()
        assert record.metrics["accepted"] == 2 and record.dropped == 1
        assert record.metrics["dropped"] == 1 and record.outcome == "released"
        assert 102 not in {u.device_id for u in aggregator.store.updates(1)}
        assert record.epsilon > 0
    finally:
        _close(aggregator)
    peers[2].train_delay_s = 0.0
    resumed = _aggregator(
        tmp_path, peers, privacy=PrivacyMode.CENTRAL, noise_multiplier=2.0, population=10
    )
    try:
        assert resumed.round == 1 and resumed.head_version == 1
        assert np.array_equal(resumed.w, aggregator.w)
        second = resumed.run_round()
        assert second.round == 2 and second.epsilon > record.epsilon
        assert resumed.store.integrity_check() == []
    finally:
        _close(resumed)


def test_budget_stops_before_spending(tmp_path: Path, peers: list[PyPeer]) -> None:
    from tools.aggregator.privacy import BudgetExceededError

    aggregator = _aggregator(
        tmp_path, peers, privacy=PrivacyMode.CENTRAL, noise_multiplier=1.0, epsilon_budget=1.0
    )
    try:
        with pytest.raises(BudgetExceededError):
            aggregator.run_round()
        assert aggregator.store.last_round() == 0
        assert not any(f.type == MsgType.TRAIN for p in peers for f in p.received)
    finally:
        _close(aggregator)
