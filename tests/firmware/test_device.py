"""The firmware through its serial link, on the host build (ASan/UBSan, pty) and on QEMU
(socket://): HELLO, model install, sensor replay, INFER vs the TFLM runtime + tools/fedref,
TRAIN vs the Python reference with the same seed."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from tests.firmware.conftest import ReplayData, perturbed_head
from tools.fedref import head as fhead
from tools.fedref import privacy as fpriv
from tools.fedref.rng import Rng
from tools.fleet import VirtualDevice
from tools.link import messages as m
from tools.link.client import DeviceClient, head_sha256

SEED = 0xC0FFEE
TRAIN_ROUND = 7


def _replay(client: DeviceClient, replay: ReplayData) -> list[m.Result]:
    return [client.sample(x, int(y)) for x, y in zip(replay.windows, replay.labels, strict=True)]


def _train_params(noise_std: float, use_seed: bool = True) -> m.Train:
    return m.Train(
        round=TRAIN_ROUND, lr=0.05, epochs=3, batch=8, momentum=0.9, weight_decay=1e-4,
        example_clip=2.0, clip=0.5, noise_std=noise_std, scale=1 / 4096, bits=16,
        flags=m.TRAIN_USE_SEED if use_seed else 0, seed=SEED,
    )


def _reference_update(w: np.ndarray, b: np.ndarray, replay: ReplayData,
                      params: m.Train) -> tuple[np.ndarray, int, fhead.TrainResult]:
    """tools/fedref on the TFLM embeddings: one ChaCha20 stream for shuffles, rounding, noise."""
    rng = Rng.from_u64(params.seed)
    train = fhead.TrainParams(params.lr, params.epochs, params.batch, params.momentum,
                              params.weight_decay, params.example_clip)
    w_local, b_local, result = fhead.train(w, b, replay.embeddings, replay.labels, train, rng)
    delta = fhead.delta(w_local, b_local, w, b)
    privacy = fpriv.PrivacyParams(params.clip, params.noise_std, params.scale, params.bits)
    q, flags = fpriv.privatize(delta, privacy, rng)
    return q, flags, result


def test_hello_reports_the_generated_model(client: DeviceClient, device: VirtualDevice,
                                          replay: ReplayData) -> None:
    info = client.hello()
    d, c = replay.w.shape
    assert (info.embed_dim, info.num_classes, info.input_len) == (d, c, replay.windows.shape[1])
    assert info.model_sha256 == replay.model_sha256
    assert info.head_version == 0
    assert info.head_sha256 == head_sha256(replay.w, replay.b)
    assert info.has(m.Capability.SAMPLE) and info.has(m.Capability.SEED)
    assert info.has(m.Capability.REPLAY) and info.profile == m.Profile.REPLAY and info.is_replay
    assert info.reset_reason == m.ResetReason.POWER_ON
    assert (info.releases, info.epsilon_spent) == (0, 0.0)
    assert info.has(m.Capability.PERSISTENT_STORAGE) == (device.kind == "host")
    assert client.device_id == device.device_id


def test_install_replay_infer_train_match_python(client: DeviceClient, device: VirtualDevice,
                                                 replay: ReplayData) -> None:
    client.hello()
    if device.kind == "qemu":
        client.seed(bytes(range(32)))  # QEMU has no entropy source: provisioned (test-only)
    w, b = perturbed_head(replay, 1)
    client.install_head(w, b, version=5)
    info = client.hello()
    assert (info.head_version, info.head_sha256) == (5, head_sha256(w, b))

    results = _replay(client, replay)
    assert all(r.stored == 1 and r.head == 1 for r in results)
    assert client.hello().examples == len(replay.labels)
    for r, e in zip(results, replay.embeddings, strict=True):
        assert np.array_equal(np.array(r.logits, np.float32), fhead.forward(w, b, e))

    inferred = client.infer(replay.windows[3], want_embedding=True)
    assert np.array_equal(np.array(inferred.embedding, np.float32), replay.embeddings[3])
    assert inferred.predicted == fhead.predict(w, b, replay.embeddings[3])

    params = _train_params(noise_std=0.0)
    client.train(params)
    update = client.fetch_update(TRAIN_ROUND, timeout=60)
    q_ref, flags_ref, result_ref = _reference_update(w, b, replay, params)
    assert np.array_equal(update.q, q_ref)
    ready = update.ready
    assert (ready.n_params, ready.bits, ready.flags) == (
        q_ref.size, 16, flags_ref & m.UPDATE_SATURATED)
    assert (ready.head_version, ready.clip, ready.noise_std) == (5, params.clip, 0.0)
    assert result_ref.examples == len(replay.labels)
    assert ready.epsilon_spent == float("inf")  # no noise: the ledger says so

    stats = client.stats()
    assert (stats.models_installed, stats.nacks) == (1, 0)


def test_noisy_update_matches_reference_and_respects_the_bound(
        client: DeviceClient, device: VirtualDevice, replay: ReplayData) -> None:
    client.hello()
    if device.kind == "qemu":
        client.seed(hashlib.sha256(b"qemu test seed").digest())
    _replay(client, replay)
    params = _train_params(noise_std=0.01)
    client.train(params)
    seeded = client.fetch_update(TRAIN_ROUND, timeout=60)
    q_ref, _, _ = _reference_update(replay.w, replay.b, replay, params)
    assert np.array_equal(seeded.q, q_ref)

    # Real entropy (host: getrandom; QEMU: the SEED above): another draw, same bound. A new
    # round: the same round again would return the same update.
    fresh_params = dataclasses.replace(params, round=TRAIN_ROUND + 1, flags=0)
    client.train(fresh_params)
    fresh = client.fetch_update(TRAIN_ROUND + 1, timeout=60)
    assert not np.array_equal(fresh.q, seeded.q)
    n = fresh.q.size
    sigma, scale = params.noise_std, params.scale
    # ||Δ|| <= C (clip) + rounding (≤ scale per coordinate) + noise norm (σ√n, 6σ margin).
    bound = params.clip + scale * np.sqrt(n) + sigma * (np.sqrt(n) + 6)
    for update in (seeded, fresh):
        assert float(np.linalg.norm(update.delta)) <= bound
        assert update.ready.flags == 0  # nothing saturated; CLIPPED is no longer sent


def test_default_8_bit_update_with_noise_matches_the_twin_and_the_bound(
        client: DeviceClient, device: VirtualDevice, replay: ReplayData) -> None:
    """The aggregator's default width and grid (8 bits, docs/PRIVACY.md's rule for σ = C):
    the device's conditional rounding and noise (host ASan and QEMU's Cortex-M4) give the
    twin's integers. (Re-drawn roundings are compared C against twin in
    tests/unit/fedcore/test_conditional_rounding.py: real deltas are accepted at once.)"""
    client.hello()
    if device.kind == "qemu":
        client.seed(hashlib.sha256(b"qemu test seed").digest())
    _replay(client, replay)
    clip = 0.5
    params = dataclasses.replace(_train_params(noise_std=clip), bits=8,
                                 scale=fpriv.quantization_scale(clip, clip, 8))
    client.train(params)
    update = client.fetch_update(TRAIN_ROUND, timeout=60)
    q_ref, flags_ref, _ = _reference_update(replay.w, replay.b, replay, params)
    assert np.array_equal(update.q, q_ref)
    assert update.ready.flags == flags_ref & m.UPDATE_SATURATED == 0  # 5σ of headroom
    assert len(update.data) == update.q.size  # one byte per value on the wire


def test_state_survives_restart(host_firmware, tmp_path, replay: ReplayData) -> None:
    from tests.firmware.conftest import assert_clean_exit
    from tests.support.cbuild import SANITIZER_ENV
    from tools.fleet import start_host_device

    w, b = perturbed_head(replay, 2)
    state = tmp_path / "state"
    first = start_host_device(host_firmware, 9, tmp_path, state, env=SANITIZER_ENV)
    try:
        with DeviceClient.open(first.url) as c:
            c.install_head(w, b, version=11)
    finally:
        assert_clean_exit(first)
    second = start_host_device(host_firmware, 9, tmp_path, state, env=SANITIZER_ENV)
    try:
        with DeviceClient.open(second.url) as c:
            info = c.hello()
            assert (info.head_version, info.head_sha256) == (11, head_sha256(w, b))
    finally:
        assert_clean_exit(second)


def test_reset_reboots_and_keeps_the_committed_head(client: DeviceClient,
                                                    replay: ReplayData) -> None:
    w, b = perturbed_head(replay, 3)
    client.install_head(w, b, version=21)
    client.sample(replay.windows[0], int(replay.labels[0]))
    info = client.reset(wait_boot=10)
    assert info is not None
    assert (info.head_version, info.head_sha256, info.examples) == (21, head_sha256(w, b), 0)
    assert info.reset_reason == m.ResetReason.SOFTWARE


def test_imprinted_personalization_matches_python(client: DeviceClient, device: VirtualDevice,
                                                  replay: ReplayData) -> None:
    """TRAIN with IMPRINT: the personal head is the global head trained, plus the class
    prototypes, bit for bit as tools/fedref (checked through the personal head's logits)."""
    client.hello()
    if device.kind == "qemu":
        client.seed(bytes(range(32)))
    w, b = perturbed_head(replay, 2)
    client.install_head(w, b, version=6)
    _replay(client, replay)
    params = m.Train(round=TRAIN_ROUND + 1, lr=0.1, epochs=3, batch=8, clip=1e6,
                     noise_std=0.0, flags=m.TRAIN_USE_SEED | m.TRAIN_IMPRINT, seed=SEED)
    client.train(params)
    client.wait_update_ready(params.round, timeout=60)
    w_p, b_p, _ = fhead.train(w, b, replay.embeddings, replay.labels,
                              fhead.TrainParams(params.lr, params.epochs, params.batch),
                              Rng.from_u64(SEED))
    w_p, b_p = fhead.imprint(w_p, b_p, replay.embeddings, replay.labels,
                             m.TRAIN_IMPRINT_STRENGTH)
    assert not np.array_equal(w_p, w)
    for window, e in zip(replay.windows[:5], replay.embeddings[:5], strict=True):
        personal = client.infer(window, use_global=False)
        assert np.array_equal(np.array(personal.logits, np.float32), fhead.forward(w_p, b_p, e))
