"""The Flower ServerApp refuses what it cannot run honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Outcome
from tools.aggregator.store import Store
from tools.flower.server_app import SECAGG_NOT_ENROLLED, FlowerAggregator, RemoteBoard


def test_secagg_rounds_leave_out_boards_not_enrolled_rather_than_see_their_updates(
    tmp_path: Path,
) -> None:
    """A board the store holds no key for could only send its update in the clear (through
    `train`): in a SecAgg round it is a dropout, and a round without two enrolled boards
    releases nothing."""
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, secagg=True, rounds=1)
    store = Store(tmp_path / "agg.sqlite")
    try:
        head = (np.zeros((4, 3), np.float32), np.zeros(3, np.float32))
        boards = [RemoteBoard(5, "pty-5", node_id=11), RemoteBoard(6, "pty-6", node_id=12)]
        engine = FlowerAggregator(store, config, None, boards, head)  # type: ignore[arg-type]
        plan = engine.plan_round()
        assert plan.selected == [5, 6]
        assert engine._collect(plan, fetch=False) == [
            Outcome(d, error=SECAGG_NOT_ENROLLED) for d in plan.selected
        ]
        [record] = engine.run()
        assert record.outcome == "empty" and record.head_out == 0
        assert store.last_round() == 1 and store.head(0)[0].tobytes() == head[0].tobytes()
    finally:
        store.close()
