"""The Flower ServerApp refuses what it cannot run honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.store import Store
from tools.flower.server_app import FlowerAggregator


def test_secagg_is_refused_rather_than_run_unmasked(tmp_path: Path) -> None:
    config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, secagg=True)
    store = Store(tmp_path / "agg.sqlite")
    try:
        head = (np.zeros((4, 3), np.float32), np.zeros(3, np.float32))
        with pytest.raises(ValueError, match="--secagg is not available with --engine flower"):
            FlowerAggregator(store, config, None, [], head)  # type: ignore[arg-type]
        assert store.last_round() == 0
    finally:
        store.close()
