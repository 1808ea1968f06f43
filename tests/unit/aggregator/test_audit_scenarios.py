"""The audit's scenarios (issue 12) through the real aggregator over real ptys: the ε it commits
is dp-accounting's figure for the event that ran — registered population, dropouts charged,
fixed denominator, budget checked on what arrived, empty rounds free — and the published
report carries no per-device data."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import dp_accounting
import numpy as np
import pytest

from tests.unit.link.peer import PyPeer, peer_delta_q
from tools.aggregator import privacy
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Aggregator
from tools.aggregator.report import write_report
from tools.aggregator.run import load_enrollment
from tools.aggregator.store import Store
from tools.fedref.privacy import quantization_scale, rounded_norm_bound
from tools.link.client import DeviceClient

W0 = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
B0 = np.zeros(3, dtype=np.float32)
N_PARAMS = 15


def _aggregator(
    tmp_path: Path,
    peers: list[PyPeer],
    enrollment: dict[int, str] | None = None,
    name: str = "agg",
    **options: object,
) -> Aggregator:
    # The audit's figures are for 16-bit updates on the grid C/4096 (the default is now 8 bits
    # with the scale rule of docs/PRIVACY.md); _c_prime assumes that grid.
    defaults = {"deadline_s": 5.0, "bits": 16, "scale": 1.0 / 4096}
    config = AggregatorConfig(**{**defaults, **options})  # type: ignore[arg-type]
    clients = [DeviceClient.open(p.path, timeout=0.5) for p in peers]
    return Aggregator(
        Store(tmp_path / f"{name}.sqlite"), config, clients, (W0, B0), enrollment=enrollment
    )


def _close(aggregator: Aggregator) -> None:
    for client in aggregator.devices:
        client.close()
    aggregator.store.close()


def _gaussian_epsilon(z_eff: list[float], delta: float = 1e-5) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    for z in z_eff:
        accountant.compose(dp_accounting.GaussianDpEvent(z))
    return accountant.get_epsilon(delta)


def _c_prime(clip: float = 1.0, scale: float | None = None) -> float:
    step = float(np.float32(clip / 4096)) if scale is None else scale
    return step * rounded_norm_bound(clip, step, N_PARAMS)


@pytest.mark.parametrize("peers", [10], indirect=True)
def test_ten_ports_population_1000_is_q_1_and_19_05(tmp_path: Path, peers: list[PyPeer]) -> None:
    notes: list[str] = []
    aggregator = _aggregator(
        tmp_path, peers, privacy=PrivacyMode.CENTRAL, population=1000, cohort_size=10
    )
    aggregator.on_event = lambda kind, detail: notes.append(detail.get("note", ""))
    try:
        records = aggregator.run(10)
        assert all(r.event == privacy.RoundEvent(1.0, 1.0 / _c_prime()) for r in records)
        assert all(len(r.cohort) == 10 for r in records)  # q = 1: every registered device
        expected = _gaussian_epsilon([1.0 / _c_prime()] * 10)
        assert records[-1].epsilon == pytest.approx(expected, rel=1e-12)
        assert records[-1].epsilon == pytest.approx(19.05, rel=0.005)  # not the 1.04 reported
        assert any("only 10" in n and "1000" in n for n in notes)
    finally:
        _close(aggregator)


def test_three_of_six_gone_central_is_12_30_and_distributed_tops_up_the_missing_noise(
    tmp_path: Path, peers: list[PyPeer]
) -> None:
    enrollment = {100 + i: f"user-{i}" for i in range(6)}  # 6 registered, 3 ports connected
    central = _aggregator(tmp_path, peers, enrollment, "central", privacy=PrivacyMode.CENTRAL)
    try:
        records = central.run(5)
        assert all(r.dropped == 3 and len(r.cohort) == 6 for r in records)
        assert records[-1].epsilon == pytest.approx(_gaussian_epsilon([1 / _c_prime()] * 5))
        assert records[-1].epsilon == pytest.approx(12.30, rel=0.005)  # not the 8.23 reported
    finally:
        _close(central)
    distributed = _aggregator(
        tmp_path, peers, enrollment, "distributed", privacy=PrivacyMode.DISTRIBUTED
    )
    try:
        w = W0.astype(np.float64)
        scale = np.float32(distributed.config.quant_scale)
        for round_id in range(1, 4):
            record = distributed.run_round()
            assert record.device_noise_std == pytest.approx(1 / math.sqrt(4))  # t = 4 of m = 6
            sent = [peer_delta_q(p.device_id, round_id, N_PARAMS, 16, 1.0, scale) for p in peers]
            arrived = np.sum([q.astype(np.float32) * scale for q in sent], axis=0)[:12]
            # fixed denominator m = 6, not the 3 that arrived; the rest is the aggregator's
            # top-up: 3 more device shares of noise, integers on the devices' grid
            topup = (distributed.w.astype(np.float64) - w).ravel() * 6 - arrived
            assert np.allclose(topup / scale, np.round(topup / scale), atol=1e-2)
            assert np.abs(topup).max() > 0
            w = distributed.w.astype(np.float64)
            # the event is that of K = 6 shares whoever arrived: z·√(6/4)
            assert record.event.noise_multiplier == pytest.approx(math.sqrt(6 / 4) / _c_prime())
        z_eff = [math.sqrt(6 / 4) / _c_prime()] * 3
        assert distributed.epsilon == pytest.approx(_gaussian_epsilon(z_eff), rel=1e-12)
    finally:
        _close(distributed)


@pytest.mark.parametrize("peers", [6], indirect=True)
def test_budget_is_never_overshot_with_dropouts(tmp_path: Path, peers: list[PyPeer]) -> None:
    """Audit: budget = the 5-round figure, 1 of 6 devices answers in round 5. The old code
    had to refuse that round (its noise, from 1 share, would have cost 19.05); now the
    aggregator tops the release up to K = 6 shares, so it costs what a full round costs and
    is released within the budget; the next round is refused before any TRAIN."""
    z_eff = math.sqrt(6 / 4) / _c_prime()  # K = 6 shares of σ = C/√t, t = 4
    four = _gaussian_epsilon([z_eff] * 4)
    five = _gaussian_epsilon([z_eff] * 5)
    aggregator = _aggregator(
        tmp_path,
        peers,
        privacy=PrivacyMode.DISTRIBUTED,
        deadline_s=1.0,
        epsilon_budget=five + 0.005,
    )
    try:
        aggregator.run(4)
        assert aggregator.epsilon == pytest.approx(four)
        for peer in peers[1:]:
            peer.train_delay_s = 3.0  # 5 of 6 miss the deadline
        lonely = aggregator.run_round()
        assert lonely.outcome == "released" and lonely.metrics["accepted"] == 1
        assert lonely.event == privacy.RoundEvent(1.0, z_eff)
        assert lonely.epsilon == pytest.approx(five) and five <= aggregator.config.epsilon_budget
        assert aggregator.store.integrity_check() == []
        with pytest.raises(privacy.BudgetExceededError):
            aggregator.run_round()  # even a full round would overshoot: nothing is sent
        assert aggregator.epsilon == pytest.approx(five)
    finally:
        _close(aggregator)


def test_empty_round_releases_nothing_and_charges_nothing(
    tmp_path: Path, peers: list[PyPeer]
) -> None:
    for peer in peers:
        peer.train_delay_s = 3.0
    aggregator = _aggregator(tmp_path, peers, privacy=PrivacyMode.DISTRIBUTED, deadline_s=1.0)
    try:
        empty = aggregator.run_round()
        assert (empty.outcome, empty.event, empty.epsilon, empty.head_out) == ("empty", None, 0, 0)
        for peer in peers:
            peer.train_delay_s = 0.0
        time.sleep(2.5)  # the late peers finish round 1's training first
        released = aggregator.run_round()
        assert released.outcome == "released"
        z_eff = math.sqrt(3 / 2) / _c_prime()  # 3 registered: K = 3 shares, t = 2
        assert released.epsilon == pytest.approx(_gaussian_epsilon([z_eff]))
        assert math.isfinite(aggregator.epsilon)
        assert aggregator.store.integrity_check() == []
    finally:
        _close(aggregator)


def test_published_report_has_three_figures_and_no_per_device_data(
    tmp_path: Path, peers: list[PyPeer]
) -> None:
    csv = tmp_path / "enrollment.csv"
    csv.write_text("device_id,user_id\n100,alice\n101,alice\n102,bob\n")
    enrollment = load_enrollment(csv)
    assert enrollment == {100: "alice", 101: "alice", 102: "bob"}
    aggregator = _aggregator(tmp_path, peers, enrollment, privacy=PrivacyMode.DISTRIBUTED)
    try:
        aggregator.run(2)
        path = write_report(aggregator.store, tmp_path / "report")
    finally:
        _close(aggregator)
    text = path.read_text()
    report = json.loads(text)
    p = report["privacy"]
    assert p["unit"] == "user-level" and p["neighbouring_relation"] == "add_or_remove_one"
    # alice's two devices: sensitivity 2·C'; K = 3 shares of σ = z·C/√2 (t = 2 of m = 3)
    assert p["epsilon_against_head_consumers"] == pytest.approx(
        _gaussian_epsilon([math.sqrt(3 / 2) / (2 * _c_prime())] * 2)
    )
    assert (p["noise_shares_released"], p["noise_shares_calibrated"]) == (3, 2)
    sigma = 1.0 / math.sqrt(2)  # σ_local = z·C/√t
    accountant = dp_accounting.rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
    )
    accountant.compose(dp_accounting.GaussianDpEvent(sigma / (2 * _c_prime())), 4)  # alice: 4
    assert p["epsilon_against_aggregator_worst_unit"] == pytest.approx(
        accountant.get_epsilon(1e-5), rel=1e-9
    )
    assert p["epsilon_device_ledger_max"] == "not reported by firmware"
    for row in report["rounds"]:
        assert set(row) <= {
            "round",
            "released",
            "head",
            "epsilon",
            "holdout_accuracy",
            "holdout_loss",
        }
    for secret in ('"cohort"', "train_loss", "examples", "dropped", '"100"', "alice"):
        assert secret not in text, secret
    assert "user-level" in (tmp_path / "report" / "aggregate.md").read_text()


def test_a_store_from_before_the_ledger_change_is_refused_with_advice(tmp_path: Path) -> None:
    import sqlite3

    from tools.aggregator.store import StoreVersionError

    old = sqlite3.connect(tmp_path / "old.sqlite")
    old.execute("CREATE TABLE rounds (round INTEGER PRIMARY KEY, cohort TEXT, epsilon REAL)")
    old.close()
    with pytest.raises(StoreVersionError, match=r"older fedhead.*--store"):
        Store(tmp_path / "old.sqlite")


def test_a_store_from_before_the_cohort_cap_gains_the_truncation_column(
    tmp_path: Path,
) -> None:
    """Stores written before the cap keep their events (nothing was capped: truncation 0)."""
    import sqlite3

    path = tmp_path / "before.sqlite"
    Store(path).close()
    old = sqlite3.connect(path)
    old.executescript(
        "DROP TABLE accountant; CREATE TABLE accountant (round INTEGER PRIMARY KEY, "
        "sampling_q REAL NOT NULL, noise_multiplier REAL NOT NULL);"
        "INSERT INTO accountant VALUES (1, 0.5, 1.2);"
    )
    old.commit()
    old.close()
    store = Store(path)
    try:
        assert store.events() == [privacy.RoundEvent(0.5, 1.2, 0.0)]
    finally:
        store.close()


def test_round_engine_without_io_and_the_device_ledger_slot(tmp_path: Path) -> None:
    """The round logic as a library (no serial link): plan, report back, finish. Firmware
    that keeps a ledger reports `epsilon_spent`; the report shows the largest."""
    from types import SimpleNamespace

    from tools.aggregator.core import Outcome, RoundEngine
    from tools.aggregator.report import privacy_summary

    store = Store(tmp_path / "engine.sqlite")
    try:
        config = AggregatorConfig(privacy=PrivacyMode.DISTRIBUTED, noise_multiplier=2.0)
        engine = RoundEngine(store, config, (W0, B0), enrollment={1: "a", 2: "a", 3: "b"})
        plan = engine.plan_round()
        assert plan.selected == [1, 2, 3] and plan.sampling.devices_per_unit == 2
        assert plan.train.noise_std == pytest.approx(2.0 / math.sqrt(2))  # z·C/√t, t = 2 of 3
        engine.note_device_ledger(2, SimpleNamespace(epsilon_spent=2.5))
        record = engine.finish_round(plan, [Outcome(d, error="silent") for d in plan.selected])
        assert (record.outcome, record.dropped, engine.epsilon) == ("empty", 3, 0.0)
        summary = privacy_summary(store)
        assert summary["epsilon_device_ledger_max"] == 2.5
        assert summary["unit"] == "user-level" and summary["rounds_released"] == 0
    finally:
        store.close()


@pytest.mark.parametrize("peers", [10], indirect=True)
def test_cli_says_when_the_population_is_not_registered(
    tmp_path: Path, peers: list[PyPeer]
) -> None:
    """`python -m tools.aggregator` with 10 ports and --population 1000: says so, q = 1."""
    from tests.unit.aggregator.test_crash_resume import _launch

    np.savez(tmp_path / "head.npz", w=W0, b=B0)
    options = ("--privacy", "central", "--population", "1000", "--cohort", "10")
    process = _launch(peers, tmp_path, 2, *options)
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = " ".join(output.decode().split())
    assert process.returncode == 0, text
    assert "--population 1000 declared but only 10" in text and "q = 1" in text
    assert text.count("--population 1000 declared") == 1  # said once, not every round
    assert "no enrollment: registered the 10 connected devices" in text
    report = json.loads((tmp_path / "report" / "aggregate.json").read_text())
    assert report["privacy"]["sampling_rate"] == 1.0
    # the CLI's defaults: 8-bit values on the grid of docs/PRIVACY.md's rule (no device noise)
    c_prime = _c_prime(scale=float(np.float32(quantization_scale(1.0, 0.0, 8))))
    assert report["epsilon"] == pytest.approx(_gaussian_epsilon([1 / c_prime] * 2))
