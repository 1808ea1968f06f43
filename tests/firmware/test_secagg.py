"""Secure aggregation on real host boards (ASan/UBSan) with the server of tools/secagg:
the aggregate is exactly the sum of the devices' integers, each upload looks uniform mod 2^b,
dropouts before and after masking are recovered, too many dropouts abort with nothing
released, and a device refuses the steps a cheating server would need."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.firmware.conftest import ReplayData, assert_clean_exit
from tests.support.cbuild import SANITIZER_ENV
from tools.aggregator import privacy
from tools.fleet import VirtualDevice, start_host_device, start_qemu_device
from tools.link import crypto
from tools.link import messages as m
from tools.link.client import DeviceClient, FetchedUpdate
from tools.link.errors import NackError
from tools.link.messages import MsgType, NackCode
from tools.secagg import masking, wire
from tools.secagg.server import SecAggAbortError, SecAggRound

SERVER = bytes(range(7, 39))
EXAMPLES = 6
RELEASE_Q_OFFSET = 24 + 36  # the release blob: ledger | UPDATE_READY | q | wrapped q | CRC


class Fleet:
    """n enrolled boards (host, then `qemu` QEMU ones) with authenticated sessions and a few
    labelled examples."""

    def __init__(
        self, firmware: Path, tmp_path: Path, n: int, replay: ReplayData,
        qemu: int = 0, qemu_elf: Path | None = None,
    ) -> None:  # fmt: skip
        self.devices: list[VirtualDevice] = []
        self.clients: dict[int, DeviceClient] = {}
        self.state: dict[int, Path] = {}  # host boards' state files
        for i in range(n):
            if i >= n - qemu:
                assert qemu_elf is not None
                device = start_qemu_device(qemu_elf, 0x5000 + i, tmp_path)
            else:
                device = start_host_device(
                    firmware, 0x5000 + i, tmp_path, tmp_path / f"s{i}", env=SANITIZER_ENV
                )
                self.state[device.device_id] = tmp_path / f"s{i}"
            self.devices.append(device)
            client = DeviceClient.open(device.url, timeout=5.0, retries=1)
            client.hello()
            if device.kind == "qemu":
                client.seed(bytes([i + 1]) * 32)  # QEMU's only entropy: test-only by design
            client.enroll(crypto.x25519_public(SERVER))
            client.start_session(SERVER)
            rows = range(i % 4, i % 4 + EXAMPLES)
            for j in rows:
                client.sample(replay.windows[j], label=int(replay.labels[j]))
            self.clients[device.device_id] = client

    def train(self, round_id: int, noise_std: float = 0.05) -> dict[int, np.ndarray]:
        """Every device trains; returns each one's noised integers before saturation — what it
        masks (test-only truth: the release blob in a host board's state file; a QEMU board's
        fetched q, checked unsaturated)."""
        updates = self.train_updates(round_id, noise_std)
        return {d: self.true_values(d, u) for d, u in updates.items()}

    def train_updates(self, round_id: int, noise_std: float) -> dict[int, FetchedUpdate]:
        """Every device trains (seeded); returns the updates as fetched (wire q)."""
        for i, client in enumerate(self.clients.values()):
            client.train(
                m.Train(
                    round=round_id,
                    lr=0.05,
                    clip=1.0,
                    noise_std=noise_std,
                    scale=1 / 256,
                    bits=8,
                    flags=1,
                    seed=1000 * round_id + i,
                )
            )
        return {d: c.fetch_update(round_id, timeout=60) for d, c in self.clients.items()}

    def true_values(self, device_id: int, update: FetchedUpdate) -> np.ndarray:
        """The update's noised integers before saturation; its wire q must saturate them."""
        q = update.q
        if device_id not in self.state:
            assert not update.ready.flags & m.UPDATE_SATURATED, "QEMU: the truth is unknown"
            return q
        blob = (
            self.state[device_id].parent / f"{self.state[device_id].name}.fh_release"
        ).read_bytes()
        assert blob[RELEASE_Q_OFFSET : RELEASE_Q_OFFSET + len(update.data)] == update.data
        start = RELEASE_Q_OFFSET + len(update.data)
        raw = blob[start : start + 4 * len(q)]
        assert struct.unpack("<I", blob[start + len(raw) :])[0] == zlib.crc32(raw)
        true = np.frombuffer(raw, dtype="<i4").astype(np.int64)  # |values| < 2^31 here
        assert np.array_equal(q, np.clip(true, -128, 127))
        return true

    def kill(self, device_id: int) -> None:
        self.clients[device_id].close()
        device = next(d for d in self.devices if d.device_id == device_id)
        device.stop()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        for device in self.devices:
            if device.alive():
                assert_clean_exit(device)


@pytest.fixture
def fleet_factory(
    host_firmware: Path, tmp_path: Path, replay: ReplayData, request: pytest.FixtureRequest
) -> Iterator:
    fleets: list[Fleet] = []

    def make(n: int, qemu: int = 0) -> Fleet:
        elf = request.getfixturevalue("qemu_elf") if qemu else None
        fleets.append(Fleet(host_firmware, tmp_path, n, replay, qemu, elf))
        return fleets[-1]

    try:
        yield make
    finally:
        for fleet in fleets:
            fleet.close()


def _n_params(q: dict[int, np.ndarray]) -> int:
    return len(next(iter(q.values())))


@pytest.mark.qemu
def test_aggregate_is_the_exact_sum_and_uploads_look_uniform(fleet_factory) -> None:
    fleet = fleet_factory(10, qemu=2)  # 8 host boards and 2 QEMU mps2-an386 boards
    p_uniform, p_plain = [], []
    for round_id in (1, 2, 3):
        q = fleet.train(round_id)
        started = time.monotonic()
        result = SecAggRound(
            fleet.clients, round_id, threshold=6, q_bits=8, n_params=_n_params(q)
        ).run()
        wall = time.monotonic() - started
        assert result.survivors == sorted(q) and result.dropped == []
        assert np.array_equal(result.total, np.sum(list(q.values()), axis=0))
        assert result.bits_mod == masking.min_bits(8, 10) == 12
        for device_id, upload in result.uploads.items():
            y = masking.unpack(upload, _n_params(q), result.bits_mod)
            observed = np.bincount((y >> np.uint64(result.bits_mod - 4)).astype(int), minlength=16)
            p_uniform.append(stats.chisquare(observed).pvalue)
            plain = (q[device_id] % (1 << result.bits_mod)) >> (result.bits_mod - 4)
            p_plain.append(stats.chisquare(np.bincount(plain, minlength=16)).pvalue)
        print(
            f"round {round_id}: SecAgg of 8 host + 2 QEMU boards in {wall:.2f} s, "
            f"{max(result.bytes_up.values())} B up per device"
        )
    # 30 uploads: none should look non-uniform at 1e-4 (a false alarm has probability 0.003);
    # the plain updates, fed to the same test, fail it — the test can see structure.
    assert min(p_uniform) > 1e-4, p_uniform
    assert max(p_plain) < 1e-4, p_plain


@pytest.mark.qemu
def test_dropouts_before_and_after_masking_leave_the_survivors_exact_sum(fleet_factory) -> None:
    fleet = fleet_factory(10, qemu=2)  # 8 host boards and 2 QEMU mps2-an386 boards
    q = fleet.train(1)
    ids = sorted(q)
    before, after = ids[1:3], ids[6:8]  # the QEMU boards (ids[8:]) stay to the end

    def on_stage(stage: str) -> None:
        for device_id in before if stage == "forward" else after if stage == "mask" else []:
            fleet.kill(device_id)

    result = SecAggRound(
        fleet.clients, 1, threshold=6, q_bits=8, n_params=_n_params(q), on_stage=on_stage
    ).run()
    survivors = [d for d in ids if d not in before]
    assert result.survivors == survivors and result.dropped == before
    assert result.responders == [d for d in survivors if d not in after]
    assert np.array_equal(result.total, np.sum([q[d] for d in survivors], axis=0))


def test_more_than_n_minus_t_dropouts_abort_and_release_nothing(fleet_factory) -> None:
    fleet = fleet_factory(5)
    q = fleet.train(1)
    ids = sorted(q)
    released: list[str] = []

    def on_stage(stage: str) -> None:
        released.append(stage)
        if stage == "mask":
            for device_id in ids[:3]:  # 3 > n - t = 2: too few to unmask
                fleet.kill(device_id)

    with pytest.raises(SecAggAbortError, match="unmask"):
        SecAggRound(
            fleet.clients, 1, threshold=3, q_bits=8, n_params=_n_params(q), on_stage=on_stage
        ).run()
    assert released == ["forward", "mask"]
    # A device asked to unmask with fewer than t survivors refuses (a cheating server).
    alive = fleet.clients[ids[3]]
    entries = tuple((d, wire.SURVIVOR if d in ids[3:] else wire.DROPPED) for d in ids)
    with pytest.raises(NackError) as refused:
        alive.request(wire.Unmask(1, entries), expect=MsgType.SECAGG_REVEAL, retries=0)
    assert refused.value.code == NackCode.SECAGG_THRESHOLD


def test_device_refuses_what_a_cheating_server_needs(fleet_factory) -> None:
    fleet = fleet_factory(3)
    q = fleet.train(4)
    ids = sorted(q)
    rnd = SecAggRound(fleet.clients, 4, threshold=2, q_bits=8, n_params=_n_params(q))
    result = rnd.run()
    assert np.array_equal(result.total, np.sum(list(q.values()), axis=0))
    client = fleet.clients[ids[0]]
    # The plain update of a SecAgg round no longer leaves the device.
    with pytest.raises(NackError) as plain:
        client.request(m.UpdateGet(4, 0, 64), expect=MsgType.UPDATE_CHUNK, retries=0)
    assert plain.value.code == NackCode.SECAGG_ACTIVE
    # Asking again with a different survivor split (to get both shares of a peer): refused.
    flipped = ((ids[0], wire.SURVIVOR), (ids[1], wire.DROPPED), (ids[2], wire.SURVIVOR))
    with pytest.raises(NackError) as twice:
        client.request(wire.Unmask(4, flipped), expect=MsgType.SECAGG_REVEAL, retries=0)
    assert twice.value.code == NackCode.SECAGG_CONSISTENCY
    # The modulus rule is checked on the device before masking: a server that asks for too
    # few bits (8-bit q, 3 devices need 10) gets no masked input at all.
    fleet.train(5)
    with pytest.raises(SecAggAbortError, match="mask"):
        SecAggRound(fleet.clients, 5, 2, 8, _n_params(q), bits_mod=9).run()
    with pytest.raises(NackError) as modulus:
        client.request(wire.Mask(5, 0, 64, tuple(ids)), expect=MsgType.SECAGG_MASKED, retries=0)
    assert modulus.value.code == NackCode.SECAGG_MODULUS
    # SecAgg requests are protected: plain ones are refused by an enrolled device.
    session, client.session = client.session, None
    with pytest.raises(NackError) as unauthenticated:
        client.request(wire.Setup(6, 3, 2, 10), expect=MsgType.SECAGG_KEYS, retries=0)
    client.session = session
    assert unauthenticated.value.code == NackCode.AUTH_REQUIRED


def test_saturated_updates_sum_as_their_true_values_mod_2_to_the_b(fleet_factory) -> None:
    """Noise of 256 grid steps on 8-bit q: most values saturate on the wire. What the devices
    mask is their noised integers before saturation, so the SecAgg sum is the true noised sum
    mod 2^b, and the aggregator's top-up added mod 2^b before decoding gives (Σ + top-up) mod
    2^b: a function of the true sum, exactly what the distributed analysis assumes. Summing
    the saturated values (what the devices masked before) gives a different sum."""
    fleet = fleet_factory(3)
    true = fleet.train(7, noise_std=1.0)
    n_params = _n_params(true)
    result = SecAggRound(fleet.clients, 7, threshold=2, q_bits=8, n_params=n_params).run()
    bits = result.bits_mod
    assert bits == masking.min_bits(8, 3) == 10
    true_sum = np.sum(list(true.values()), axis=0)
    assert np.array_equal(result.total, masking.to_signed(true_sum % (1 << bits), bits))
    assert np.any(np.abs(true_sum) >= 1 << (bits - 1))  # some coordinates wrap: a utility loss
    saturated_sum = np.sum([np.clip(v, -128, 127) for v in true.values()], axis=0)
    assert not np.array_equal(result.total, masking.to_signed(saturated_sum % (1 << bits), bits))
    top_up = np.random.default_rng(3).integers(-5000, 5000, n_params)
    released = privacy.modular_release(result.total, top_up, bits)
    assert np.array_equal(released, masking.to_signed((true_sum + top_up) % (1 << bits), bits))


@pytest.mark.qemu
def test_a_qemu_board_masks_its_values_before_saturation(fleet_factory) -> None:
    """The same on the Cortex-M4 build: 2 host boards (truth from their blobs) and a QEMU
    board (RAM storage: its truth is what the sum says). Where its wire value is inside the
    range, the sum minus the host boards' values gives it back exactly; where it saturated,
    the sum holds a value beyond the wire range, not the saturated one."""
    fleet = fleet_factory(3, qemu=1)
    updates = fleet.train_updates(8, noise_std=1.0)
    qemu_id = next(d for d in updates if d not in fleet.state)
    host = {d: fleet.true_values(d, u) for d, u in updates.items() if d != qemu_id}
    n_params = len(updates[qemu_id].q)
    result = SecAggRound(fleet.clients, 8, threshold=2, q_bits=8, n_params=n_params).run()
    bits = result.bits_mod
    qemu = masking.to_signed((result.total - sum(host.values())) % (1 << bits), bits)
    wire = updates[qemu_id].q
    inside = (wire > -128) & (wire < 127)
    assert np.array_equal(qemu[inside], wire[inside])
    edge = ~inside
    assert edge.sum() > n_params // 4  # σ = 256 grid steps: most values saturate
    assert np.mean(np.abs(qemu[edge]) > 128) > 0.9  # the masked values were not clamped
