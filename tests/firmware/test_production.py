"""The production profile on the host board (ASan/UBSan): the device is its own privacy boundary.

Nothing computed from the user's examples leaves it except an update it privatized under its
build-time policy and accounted in its own ledger (docs/PRIVACY.md). The user's examples come
from the board's sensor (a file the host port reads at boot), never over the link. The same
attacks are run against the replay profile where they must succeed, so the tests can fail.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant

from model_gen import paths
from tests.firmware.conftest import ReplayData, assert_clean_exit
from tests.support.cbuild import SANITIZER_ENV
from tests.support.firmware import TASK
from tools.fedref import head as fhead
from tools.fedref import ledger as fledger
from tools.fedref.policy import Policy
from tools.fedref.rng import Rng
from tools.fleet import VirtualDevice, start_host_device, write_sensor_file
from tools.link import crypto
from tools.link import messages as m
from tools.link.client import DeviceClient
from tools.link.errors import LinkTimeoutError, NackError
from tools.link.messages import MsgType, NackCode

DEVICE_ID = 0x7070
ATTACK_QUERIES = 48
# Within the production policy: sigma = z C with z = 2, the usual grid C / 4096.
PRIVATE = m.Train(round=1, lr=0.05, epochs=2, batch=8, clip=0.5, noise_std=1.0,
                  scale=0.5 / 4096, bits=32)

SERVER_SECRET = bytes(range(40, 72))  # the test aggregator's X25519 key


@dataclasses.dataclass
class Board:
    """A production host board with its sensor file and its storage (files under `state`)."""

    firmware: Path
    workdir: Path
    sensor: Path | None
    device: VirtualDevice | None = None

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    def start(self) -> DeviceClient:
        self.device = start_host_device(self.firmware, DEVICE_ID, self.workdir, self.state,
                                        env=SANITIZER_ENV, sensor_path=self.sensor)
        client = DeviceClient.open(self.device.url, timeout=5.0, retries=2)
        # A production board trains only for its enrolled server (PROTOCOL.md §6).
        client.hello()
        client.enroll(crypto.x25519_public(SERVER_SECRET))
        client.start_session(SERVER_SECRET)
        return client

    def stop(self) -> None:
        if self.device is not None:
            assert_clean_exit(self.device)
            self.device = None


@pytest.fixture
def board(production_firmware: Path, replay: ReplayData, tmp_path: Path) -> Iterator[Board]:
    sensor = write_sensor_file(tmp_path / "sensor.bin", replay.windows, replay.labels)
    b = Board(production_firmware, tmp_path, sensor)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def client(board: Board) -> Iterator[DeviceClient]:
    with board.start() as c:
        yield c


def _refused(client: DeviceClient, message: m.Message, expect: MsgType = MsgType.ACK) -> int:
    with pytest.raises(NackError) as info:
        client.request(message, expect=expect, retries=0)
    return info.value.code


def _ledger_epsilon(releases: list[m.Train], n_params: int, delta: float) -> float:
    ledger = fledger.Ledger()
    for t in releases:
        ledger.add(t.round, fledger.release_rho(t.clip, t.noise_std, t.scale, n_params))
    return ledger.epsilon(delta)


def test_info_announces_the_profile_and_the_policy(client: DeviceClient) -> None:
    info = client.hello()
    policy = Policy.production()
    assert (info.profile, info.profile_name, info.is_replay) == (m.Profile.PRODUCTION,
                                                                 "production", False)
    assert info.has(m.Capability.LEDGER) and info.has(m.Capability.TRAIN)
    for cap in (m.Capability.SAMPLE, m.Capability.SEED, m.Capability.REPLAY):
        assert not info.has(cap), cap
    assert info.examples == 0, "the example count is data-derived: production reports 0"
    assert info.reset_reason == m.ResetReason.POWER_ON
    assert (info.releases, info.last_round, info.epsilon_spent) == (0, 0, 0.0)
    f32 = np.float32
    assert (info.policy_z_min, info.policy_clip_max, info.policy_max_work) == (
        f32(policy.z_min), f32(policy.clip_max), policy.max_work)
    assert (info.epsilon_budget, info.delta, info.policy_scale_min_rel) == (
        f32(policy.epsilon_budget), f32(policy.delta), f32(policy.scale_min_rel))
    assert info.policy_bits_mask == policy.bits_mask


def test_host_windows_seed_and_seeded_train_are_unsupported(client: DeviceClient,
                                                            replay: ReplayData) -> None:
    window = replay.windows[0].astype(np.int8).tobytes()
    n = len(window)
    for message, expect in (
        (m.Sample(m.SAMPLE_LABELLED, 1, n, window), MsgType.RESULT),
        (m.Sample(0, 0, n, window), MsgType.RESULT),
        (m.Infer(0, 0, n, window), MsgType.RESULT),
        (m.Infer(m.INFER_USE_GLOBAL | m.INFER_WANT_EMBEDDING, 0, n, window), MsgType.RESULT),
        (m.Seed(bytes(32)), MsgType.ACK),
        (dataclasses.replace(PRIVATE, flags=m.TRAIN_USE_SEED, seed=1), MsgType.ACK),
    ):
        assert _refused(client, message, expect) == NackCode.UNSUPPORTED, message.TYPE.name
    assert client.hello().releases == 0


def _local_functions(binary: Path) -> set[str]:
    out = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[-2:-1] in (["t"], ["T"])}


def test_replay_handlers_are_compiled_out(production_firmware: Path, host_firmware: Path) -> None:
    """Not a run-time switch: the code that answers host windows is not in a production image
    (it is in the replay image, so the check can tell)."""
    replay_only = {"embed_window", "send_result"}  # SAMPLE/INFER's window path and RESULT
    assert replay_only <= _local_functions(host_firmware)
    assert not replay_only & _local_functions(production_firmware)


def _extract_personal_delta(client: DeviceClient, windows: np.ndarray) -> np.ndarray:
    """The issue's attack: INFER each window on the personal and on the global head, solve
    logits = [e, 1] @ [W; b] for both by least squares, return the personal-head delta."""
    rows_p, rows_g, logits_p, logits_g = [], [], [], []
    for window in windows:
        personal = client.infer(window, want_embedding=True)
        glob = client.infer(window, use_global=True, want_embedding=True)
        rows_p.append([*personal.embedding, 1.0])
        rows_g.append([*glob.embedding, 1.0])
        logits_p.append(personal.logits)
        logits_g.append(glob.logits)
    solve = np.linalg.lstsq
    wb_p = solve(np.asarray(rows_p), np.asarray(logits_p), rcond=None)[0]
    wb_g = solve(np.asarray(rows_g), np.asarray(logits_g), rcond=None)[0]
    return wb_p - wb_g


def _attack_windows() -> np.ndarray:
    """Public data the attacker holds: windows of another user than the device's."""
    folder = paths.model_dir(TASK)
    devices = np.load(folder / paths.DEVICES_NAME)
    federated = [i for i, s in enumerate(devices["device_split"]) if s == "federated"]
    rows = np.flatnonzero(devices["device"] == federated[1])[:ATTACK_QUERIES]
    return devices["x"][rows].reshape(len(rows), -1).astype(np.int8)


def test_extraction_attack_recovers_the_delta_on_replay(host_firmware: Path, replay: ReplayData,
                                                        tmp_path: Path) -> None:
    """The attack works where the leak exists (replay build): so its failure below means
    something. Reference: tools/fedref on the same examples with the same seed."""
    device = start_host_device(host_firmware, DEVICE_ID, tmp_path, env=SANITIZER_ENV)
    try:
        with DeviceClient.open(device.url, timeout=5.0) as client:
            for x, y in zip(replay.windows, replay.labels, strict=True):
                client.sample(x, int(y))
            train = dataclasses.replace(PRIVATE, noise_std=0.0, flags=m.TRAIN_USE_SEED, seed=5)
            client.train(train)
            client.fetch_update(train.round, timeout=60)
            stolen = _extract_personal_delta(client, _attack_windows())
    finally:
        assert_clean_exit(device)
    params = fhead.TrainParams(train.lr, train.epochs, train.batch, train.momentum,
                               train.weight_decay, train.example_clip)
    w, b, _ = fhead.train(replay.w, replay.b, replay.embeddings, replay.labels, params,
                          Rng.from_u64(train.seed))
    true_delta = np.vstack([w - replay.w, (b - replay.b)[None, :]])
    # What training did to the user's own predictions, read off the stolen delta.
    user = np.hstack([replay.embeddings, np.ones((len(replay.embeddings), 1))])
    shift, stolen_shift = user @ true_delta, user @ stolen
    err = float(np.max(np.abs(stolen_shift - shift)))
    print(f"extraction on replay: max logit-shift error {err:.3g} of {np.max(np.abs(shift)):.3g}")
    assert err < 0.05 * float(np.max(np.abs(shift))), (err, float(np.max(np.abs(shift))))


def test_extraction_attack_gets_nothing_on_production(client: DeviceClient) -> None:
    client.train(PRIVATE)
    client.fetch_update(PRIVATE.round, timeout=60)
    answered = 0
    for window in _attack_windows():
        for use_global in (False, True):
            with pytest.raises(NackError) as info:
                client.infer(window, use_global=use_global, want_embedding=True)
            assert info.value.code == NackCode.UNSUPPORTED
            answered += 1
    assert answered == 2 * ATTACK_QUERIES


def test_update_ready_carries_no_training_metrics(client: DeviceClient) -> None:
    names = {f.name for f in dataclasses.fields(m.UpdateReady)}
    assert not names & {"examples", "train_loss", "train_acc", "train_us"}
    client.train(PRIVATE)
    update = client.fetch_update(PRIVATE.round, timeout=60)
    ready = update.ready
    assert len(ready.pack()) == 36 and ready.total_len == 4 * ready.n_params
    assert (ready.round, ready.bits, ready.flags) == (PRIVATE.round, 32, 0)
    f32 = np.float32
    assert (ready.clip, ready.noise_std, ready.scale) == (
        f32(PRIVATE.clip), f32(PRIVATE.noise_std), f32(PRIVATE.scale))
    stats_fields = {f.name for f in dataclasses.fields(m.Stats)}
    assert stats_fields == {"frames_ok", "bad_cobs", "bad_crc", "bad_version", "oversize",
                            "unknown_type", "nacks", "models_installed", "models_rejected",
                            "uptime_ms"}
    assert client.stats().models_installed == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"noise_std": 0.49}, NackCode.POLICY_NOISE),  # z = 0.98 < z_min = 1
        ({"noise_std": 0.0}, NackCode.POLICY_NOISE),
        ({"clip": 4.5, "noise_std": 9.0, "scale": 4.5 / 4096}, NackCode.POLICY_CLIP),
        ({"clip": 0.0}, NackCode.POLICY_CLIP),  # no bound at all
        ({"scale": 0.5 * 2.0**-18}, NackCode.POLICY_QUANT),  # finer than clip * 2^-16
        ({"scale": 0.5 / 8}, NackCode.POLICY_QUANT),  # coarser than clip / 16
        ({"epochs": 33}, NackCode.POLICY_WORK),  # 33 x 256 > 8192
        ({"epochs": 65535, "batch": 1}, NackCode.POLICY_WORK),
        ({"clip": 0.0, "noise_std": 0.0, "scale": 2.0**-30}, NackCode.POLICY_CLIP),  # the issue's
    ],
)
def test_train_outside_the_policy_is_refused(client: DeviceClient, change: dict,
                                             code: NackCode) -> None:
    assert _refused(client, dataclasses.replace(PRIVATE, **change)) == code
    info = client.hello()
    assert (info.releases, info.epsilon_spent) == (0, 0.0)


def test_one_update_per_round(client: DeviceClient) -> None:
    client.train(PRIVATE)
    first = client.fetch_update(PRIVATE.round, timeout=60)
    # Again, even with other parameters: the same bytes and header, never fresh noise.
    client.train(dataclasses.replace(PRIVATE, noise_std=2.0))
    again = client.fetch_update(PRIVATE.round, timeout=60)
    assert (again.data, again.ready) == (first.data, first.ready)
    assert client.hello().releases == 1
    later = dataclasses.replace(PRIVATE, round=PRIVATE.round + 1)
    client.train(later)
    second = client.fetch_update(later.round, timeout=60)
    assert second.data != first.data
    assert _refused(client, PRIVATE) == NackCode.ROUND_OLD
    assert client.hello().releases == 2


def test_ledger_matches_python_twin_and_dp_accounting(client: DeviceClient) -> None:
    info = client.hello()
    n_params = info.embed_dim * info.num_classes + info.num_classes
    trains = [PRIVATE, dataclasses.replace(PRIVATE, round=4, noise_std=2.0)]
    for train in trains:
        client.train(train)
        ready = client.fetch_update(train.round, timeout=60).ready
    delta = float(np.float32(info.delta))
    twin = _ledger_epsilon(trains, n_params, fledger_delta := Policy.production().delta)
    accountant = RdpAccountant(orders=list(fledger.ORDERS))
    for t in trains:
        sigma = float(np.float32(t.noise_std)) / float(np.float32(t.scale))
        z = sigma / fledger.sensitivity_grid(t.clip, t.scale, n_params)
        accountant.compose(dp_accounting.GaussianDpEvent(z))
    reference = accountant.get_epsilon(fledger_delta)
    assert twin == pytest.approx(reference, rel=1e-9)
    assert delta == pytest.approx(fledger_delta, rel=1e-7)
    info = client.hello()
    assert info.epsilon_spent == pytest.approx(twin, rel=1e-6)  # sent as float32
    assert ready.epsilon_spent == info.epsilon_spent
    assert (info.releases, info.last_round) == (2, 4)


def test_budget_refuses_and_survives_a_restart(board: Board) -> None:
    """z = 1: one release costs about 11.7 of the 16 budget; a second does not fit."""
    tight = dataclasses.replace(PRIVATE, noise_std=0.5, bits=16)
    second = dataclasses.replace(tight, round=2)
    with board.start() as client:
        client.train(tight)
        first = client.fetch_update(tight.round, timeout=60)
        assert _refused(client, second) == NackCode.BUDGET
        spent = client.hello().epsilon_spent
    board.stop()
    assert 10 < spent < 16
    with board.start() as client:
        info = client.hello()
        assert (info.epsilon_spent, info.releases, info.last_round) == (spent, 1, 1)
        assert _refused(client, second) == NackCode.BUDGET
        # The persisted release is still the one update of round 1.
        client.train(tight)
        again = client.fetch_update(tight.round, timeout=60)
        assert again.data == first.data
        # The budget refuses what would exceed it, not everything: z = 100 still fits.
        cheap = dataclasses.replace(second, noise_std=50.0, bits=32)
        client.train(cheap)
        client.fetch_update(cheap.round, timeout=60)
        info = client.hello()
        assert info.releases == 2 and spent < info.epsilon_spent < info.epsilon_budget


def test_storage_failure_releases_nothing(board: Board) -> None:
    with board.start() as client:
        client.hello()
        # The host port writes PATH.fh_release.tmp then renames it: a directory there makes
        # the commit fail, like a worn-out flash page.
        (board.workdir / "state.fh_release.tmp").mkdir()
        client.train(PRIVATE)
        with pytest.raises(LinkTimeoutError):
            client.fetch_update(PRIVATE.round, timeout=3)
        with pytest.raises(NackError) as info:
            client.request(m.UpdateGet(PRIVATE.round, m.UPDATE_GET_READY_OFFSET, 0),
                           expect=MsgType.UPDATE_READY, retries=0)
        assert info.value.code == NackCode.NO_DATA
        assert client.hello().releases == 0
        (board.workdir / "state.fh_release.tmp").rmdir()
        client.train(PRIVATE)
        client.fetch_update(PRIVATE.round, timeout=60)
        assert client.hello().releases == 1


def test_without_examples_the_update_is_noise_only(production_firmware: Path,
                                                   tmp_path: Path) -> None:
    """No sensor data: TRAIN is not refused (a NO_DATA refusal would say the user has none);
    the update is the noise alone, about sigma per coordinate."""
    b = Board(production_firmware, tmp_path, None)
    try:
        with b.start() as client:
            client.train(PRIVATE)
            update = client.fetch_update(PRIVATE.round, timeout=60)
    finally:
        b.stop()
    std = float(np.std(update.delta))
    assert math.isclose(std, PRIVATE.noise_std, rel_tol=0.15), std


def test_the_application_collects_and_predicts_on_the_device(board: Board,
                                                             replay: ReplayData) -> None:
    """fc_device_add_example / fc_device_predict: the host port's application reads its sensor
    at boot and reports on its console (stderr, not the link) how often the personal head (the
    initial head on a fresh board) is right; the count equals the reference's."""
    with board.start() as client:
        client.hello()
        assert board.device is not None
        log = board.device.log_text()
    n = len(replay.labels)
    right = sum(fhead.predict(replay.w, replay.b, e) == y
                for e, y in zip(replay.embeddings, replay.labels, strict=True))
    assert f"{n} examples kept, 0 refused" in log
    assert f"personal head right on {right} of {n} windows" in log


def test_a_damaged_stored_update_is_never_noised_again(board: Board) -> None:
    """The ledger survives a damaged update blob; the round of that update is refused rather
    than trained again with fresh noise; a corrupt ledger refuses every TRAIN (fail closed)."""
    with board.start() as client:
        client.train(PRIVATE)
        client.fetch_update(PRIVATE.round, timeout=60)
    board.stop()
    release = board.workdir / "state.fh_release"
    blob = bytearray(release.read_bytes())
    blob[-1] ^= 0x01  # a q byte
    release.write_bytes(bytes(blob))
    with board.start() as client:
        info = client.hello()
        assert (info.releases, info.last_round) == (1, PRIVATE.round)
        assert _refused(client, PRIVATE) == NackCode.ROUND_OLD
        nxt = dataclasses.replace(PRIVATE, round=PRIVATE.round + 1)
        client.train(nxt)
        client.fetch_update(nxt.round, timeout=60)
    board.stop()
    blob = bytearray(release.read_bytes())
    blob[13] ^= 0x01  # the ledger's rho
    release.write_bytes(bytes(blob))
    with board.start() as client:
        info = client.hello()
        assert info.releases == 0 and info.epsilon_spent == math.inf  # unknown: all of it
        later = dataclasses.replace(PRIVATE, round=PRIVATE.round + 5)
        assert _refused(client, later) == NackCode.STORAGE


def test_production_personalization_adds_the_prototypes(board: Board,
                                                        replay: ReplayData) -> None:
    """TRAIN with IMPRINT runs on a production board (training, then fc_head_imprint on the
    sensor's examples). A learning rate too small to move any weight leaves the trained head
    equal to the initial one, so the personal head is exactly initial + prototypes whatever
    the CSPRNG's shuffles; after a restart the application's count of right answers equals the
    twin's and differs from the initial head's."""
    personalize = dataclasses.replace(PRIVATE, lr=1e-30, flags=m.TRAIN_IMPRINT)
    with board.start() as client:
        client.train(personalize)
        client.fetch_update(personalize.round, timeout=60)
    board.stop()
    with board.start() as client:
        client.hello()
        assert board.device is not None
        log = board.device.log_text()
    w_p, b_p = fhead.imprint(replay.w, replay.b, replay.embeddings, replay.labels,
                             m.TRAIN_IMPRINT_STRENGTH)
    pairs = list(zip(replay.embeddings, replay.labels, strict=True))
    right = sum(fhead.predict(w_p, b_p, e) == y for e, y in pairs)
    right_initial = sum(fhead.predict(replay.w, replay.b, e) == y for e, y in pairs)
    assert right != right_initial
    assert f"personal head right on {right} of {len(pairs)} windows" in log
