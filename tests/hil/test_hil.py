"""Hardware-in-the-loop checks, the same on a flashed board (`invoke hil --port P`) and on the
virtual boards: boot/HELLO, model install, inference equal to the host reference, a training
round with a valid update, and recovery from a reset in the middle of a model transfer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_gen import paths
from tests.firmware.conftest import ReplayData, perturbed_head
from tools.aggregator.validation import Expected, validate
from tools.fedref import head as ref_head
from tools.link import messages as m
from tools.link.client import CHUNK_BYTES, DeviceClient, head_blob, head_sha256
from tools.link.frame import PROTOCOL_VERSION


def _card() -> dict:
    return json.loads((paths.model_dir("watch") / paths.CARD_NAME).read_text())


def test_boot_hello_describes_the_firmware(hil: DeviceClient, replay: ReplayData,
                                          profile: str) -> None:
    card = _card()
    info = hil.hello()
    assert info.proto_version == PROTOCOL_VERSION
    assert info.profile_name == profile, f"the board runs {info.profile_name}, not {profile}"
    assert (info.embed_dim, info.num_classes, info.input_len) == (
        card["embedding_dim"], card["num_classes"], card["input_len"])
    assert info.model_sha256.hex() == card["tflite_sha256"]
    assert info.board_name
    assert info.has(m.Capability.TRAIN) and info.has(m.Capability.LEDGER)
    assert info.has(m.Capability.SAMPLE) == (profile == "replay")


def test_model_install_switches_the_head(hil: DeviceClient, replay: ReplayData) -> None:
    w, b = perturbed_head(replay, 1)
    hil.install_head(w, b, version=7)
    info = hil.hello()
    assert (info.head_version, info.head_sha256) == (7, head_sha256(w, b))


@pytest.mark.usefixtures("replay_profile")
def test_inference_equals_the_host_reference(hil: DeviceClient, replay: ReplayData) -> None:
    for window, embedding in zip(replay.windows[:20], replay.embeddings[:20], strict=True):
        result = hil.infer(window, use_global=True, want_embedding=True)
        # The backbone is bit-exact with the TFLM runtime; the head is the same float math.
        assert np.array_equal(np.asarray(result.embedding, np.float32), embedding)
        logits = ref_head.forward(replay.w, replay.b, embedding)
        np.testing.assert_allclose(result.logits, logits, rtol=1e-5, atol=1e-5)
        assert result.predicted == int(np.argmax(logits))


@pytest.mark.usefixtures("replay_profile")
def test_training_round_returns_a_valid_update(hil: DeviceClient, replay: ReplayData) -> None:
    for window, label in zip(replay.windows[:30], replay.labels[:30], strict=True):
        assert hil.sample(window, int(label)).stored == 1
    clip, noise, scale = 0.5, 0.05, 0.5 / 4096
    round_id = hil.hello().last_round + 1  # one update per round: a board keeps its last
    params = m.Train(round=round_id, lr=0.1, epochs=2, batch=8, clip=clip, noise_std=noise,
                     scale=scale, bits=16)
    hil.train(params)
    update = hil.fetch_update(round_id, timeout=60)
    n_params = replay.w.size + replay.b.size
    head_version = hil.hello().head_version
    expected = Expected(round_id, head_version, n_params, clip, float(np.float32(scale)), 16,
                        noise)
    verdict = validate(update.ready, update.data, expected, set(), update.device_id)
    assert verdict.accepted, verdict.reason
    assert (update.ready.clip, update.ready.noise_std) == (np.float32(clip), np.float32(noise))
    assert verdict.norm > 0


def test_reset_mid_transfer_keeps_the_committed_head(hil: DeviceClient,
                                                     replay: ReplayData) -> None:
    committed = perturbed_head(replay, 2)
    hil.install_head(*committed, version=10)
    w, b = perturbed_head(replay, 3)
    blob = head_blob(w, b)
    hil.request(m.ModelBegin(11, len(blob), *w.shape, head_sha256(w, b)), expect=m.MsgType.ACK)
    hil.request(m.ModelChunk(11, 0, blob[: min(CHUNK_BYTES, len(blob) // 2)]),
                expect=m.MsgType.ACK)
    info = hil.reset(wait_boot=15)
    assert info is not None
    assert (info.head_version, info.head_sha256) == (10, head_sha256(*committed))
    hil.install_head(w, b, version=11)  # the interrupted transfer can simply start again
    assert hil.hello().head_sha256 == head_sha256(w, b)
