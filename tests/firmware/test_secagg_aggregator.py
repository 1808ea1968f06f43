"""`--privacy distributed --secagg` end to end on 6 enrolled host boards (ASan/UBSan): rounds
are released from the SecAgg sum, the store keeps only masked uploads, the devices refuse to
hand out their plain updates, a board that drops out is topped up by the aggregator (the
release still carries K = 6 shares), and ε against the aggregator is that of the sums it saw
(the k ≥ t shares in each, zero-out, no amplification)."""

from __future__ import annotations

import math
from pathlib import Path

import dp_accounting
import pytest

from tests.firmware.conftest import ReplayData, assert_clean_exit
from tests.support.cbuild import SANITIZER_ENV
from tools.aggregator import privacy
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.core import Aggregator
from tools.aggregator.provision import provision
from tools.aggregator.report import privacy_lines, privacy_summary
from tools.aggregator.store import Store
from tools.fleet import start_host_device
from tools.link import messages as m
from tools.link.client import DeviceClient
from tools.link.errors import NackError
from tools.link.messages import MsgType, NackCode
from tools.secagg import masking

DEVICES = 6


def test_distributed_secagg_rounds_release_only_sums(
    host_firmware: Path, tmp_path: Path, replay: ReplayData
) -> None:
    store_path = tmp_path / "agg.sqlite"
    devices = [
        start_host_device(host_firmware, 0x6100 + i, tmp_path, tmp_path / f"s{i}",
                          env=SANITIZER_ENV)
        for i in range(DEVICES)
    ]  # fmt: skip
    clients: list[DeviceClient] = []
    try:
        for device in devices:
            provision(device.url, store_path)
        for i, device in enumerate(devices):
            client = DeviceClient.open(device.url, timeout=5.0, retries=1)
            client.hello()
            for j in range(i % 3, i % 3 + 6):
                client.sample(replay.windows[j], label=int(replay.labels[j]))
            clients.append(client)
        store = Store(store_path)
        config = AggregatorConfig(
            rounds=2, privacy=PrivacyMode.DISTRIBUTED, secagg=True, noise_multiplier=1.0,
            clip=1.0, deadline_s=60, simulation=True,
        )  # fmt: skip  (the default width and grid: 8-bit q, conditional rounding)
        aggregator = Aggregator(store, config, clients, (replay.w, replay.b))
        records = aggregator.run()
        n_params = replay.w.size + replay.b.size
        assert config.bits == 8
        bits_mod = masking.min_bits(config.bits, DEVICES)
        for record in records:
            assert record.outcome == "released" and record.metrics["accepted"] == DEVICES
            for update in store.updates(record.round):
                assert update.accepted and len(update.q) == (n_params * bits_mod + 7) // 8
        assert aggregator.head_version == 2 and store.integrity_check() == []
        # Round 3: one board loses power before it trains. The sum holds 5 shares (≥ t = 4);
        # the aggregator adds the sixth, so the release and its ε are a full round's.
        devices[-1].stop()
        dropped = aggregator.run_round()
        assert dropped.outcome == "released" and dropped.metrics["accepted"] == DEVICES - 1
        assert dropped.event == records[0].event
        sigma = 1.0 / math.sqrt(4)  # σ = z·C/√t, t = ⌊6/2⌋ + 1
        assert dropped.device_noise_std == pytest.approx(sigma)
        c_prime = privacy.update_sensitivity(config, n_params, sigma)
        assert records[0].event.noise_multiplier == pytest.approx(sigma * math.sqrt(6) / c_prime)
        # The plain update of a SecAgg round never leaves a device.
        try:
            clients[0].request(m.UpdateGet(3, 0, 64), expect=MsgType.UPDATE_CHUNK, retries=0)
            raise AssertionError("a device released its plain update")
        except NackError as err:
            assert err.code == NackCode.SECAGG_ACTIVE
        summary = privacy_summary(store)
        assert summary["secagg"] and summary["secagg_unreleased_sums"] == 0
        # Against the aggregator: the sums of 6, 6 and 5 shares, no amplification.
        accountant = dp_accounting.rdp.RdpAccountant()
        for shares in (6, 6, 5):
            accountant.compose(dp_accounting.GaussianDpEvent(sigma * math.sqrt(shares) / c_prime))
        assert summary["epsilon_against_aggregator_worst_unit"] == pytest.approx(
            accountant.get_epsilon(config.delta), rel=1e-9
        )
        assert summary["epsilon_against_head_consumers"] == pytest.approx(
            privacy.ledger_epsilon(config, [records[0].event] * 3), rel=1e-12
        )
        assert "it saw only sums" in privacy_lines(summary)
        store.close()
    finally:
        for client in clients:
            client.close()
        for device in devices[:-1]:
            assert_clean_exit(device)
        devices[-1].stop()


def test_plain_rounds_over_enrolled_devices_use_the_authenticated_link(
    host_firmware: Path, tmp_path: Path, replay: ReplayData
) -> None:
    store_path = tmp_path / "agg.sqlite"
    devices = [
        start_host_device(host_firmware, 0x6200 + i, tmp_path, tmp_path / f"s{i}",
                          env=SANITIZER_ENV)
        for i in range(3)
    ]  # fmt: skip
    clients: list[DeviceClient] = []
    try:
        for device in devices:
            provision(device.url, store_path)
            client = DeviceClient.open(device.url, timeout=5.0, retries=1)
            client.hello()
            for j in range(6):
                client.sample(replay.windows[j], label=int(replay.labels[j]))
            clients.append(client)
        store = Store(store_path)
        aggregator = Aggregator(
            store, AggregatorConfig(rounds=1, simulation=True), clients, (replay.w, replay.b)
        )
        [record] = aggregator.run()
        assert record.outcome == "released" and record.metrics["accepted"] == 3
        for client in clients:
            info = client.enroll_info()
            assert info.rx_counter > 0 and info.rejected_required == 0  # TRAIN went sealed
            assert client.counters.auth_rejected == 0
        store.close()
    finally:
        for client in clients:
            client.close()
        for device in devices:
            assert_clean_exit(device)
