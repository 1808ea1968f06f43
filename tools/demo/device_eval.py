"""What the demo asks of each device: provision labelled windows, personalize, score.

Everything here goes through the real link (DeviceClient over a pty or socket://): windows
are replayed as SAMPLE frames, accuracy is the device's own INFER answer on its test windows,
and personalization is the device's own TRAIN. Only the local-only baseline is computed on the
host, with the Python twin of the device's head training (tests prove the twin equals the C),
on the embeddings the device itself returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.demo.data import DeviceData, accuracy
from tools.fedref import head as ref_head
from tools.fedref.rng import Rng
from tools.link import messages as m
from tools.link.client import DeviceClient

# Round ids the aggregator never uses: personalization happens on the device and its update is
# never fetched, so nothing of it leaves the device.
PERSONALIZE_ROUND_BASE = 0xF0000000


@dataclass(frozen=True)
class LocalTraining:
    """Optimizer settings of on-device personalization (and of the local-only baseline)."""

    lr: float = 0.1
    epochs: int = 30  # within the device policy's work limit (32 epochs of 256 examples)
    batch: int = 8
    imprint: bool = True  # trained head plus the class prototypes (TRAIN_IMPRINT)

    def train_message(self, round_id: int) -> m.Train:
        # No noise and no clipping: the result stays on the device as its personal head.
        return m.Train(round=round_id, lr=self.lr, epochs=self.epochs, batch=self.batch,
                       clip=1e6, noise_std=0.0,
                       flags=m.TRAIN_IMPRINT if self.imprint else 0)

    def params(self) -> ref_head.TrainParams:
        return ref_head.TrainParams(lr=self.lr, epochs=self.epochs, batch=self.batch)


def provision(client: DeviceClient, x: np.ndarray, y: np.ndarray) -> None:
    """Replace the device's examples with these labelled windows (sensor replay)."""
    client.clear(m.CLEAR_EXAMPLES)
    for window, label in zip(x, y, strict=True):
        client.sample(window, int(label))


def predictions(client: DeviceClient, x: np.ndarray, use_global: bool) -> np.ndarray:
    return np.asarray([client.infer(w, use_global=use_global).predicted for w in x])


def embeddings(client: DeviceClient, x: np.ndarray) -> np.ndarray:
    """The device's own float embeddings of windows (INFER with the embedding attached)."""
    rows = [client.infer(w, use_global=True, want_embedding=True).embedding for w in x]
    return np.asarray(rows, dtype=np.float32)


def device_accuracy(client: DeviceClient, device: DeviceData, use_global: bool) -> float:
    return accuracy(predictions(client, device.test_x, use_global), device.test_y)


def personalize(client: DeviceClient, training: LocalTraining, timeout_s: float) -> None:
    """On-device training from the installed global head; the result is the personal head.
    Each call is a new round (the device releases one update per round and refuses older
    rounds), numbered after the last round the device reports in INFO."""
    round_id = max(PERSONALIZE_ROUND_BASE, client.hello().last_round + 1)
    client.train(training.train_message(round_id))
    client.wait_update_ready(round_id, timeout=timeout_s)


def local_only_accuracy(shot_emb: np.ndarray, shot_y: np.ndarray, test_emb: np.ndarray,
                        test_y: np.ndarray, training: LocalTraining, seed: int) -> float:
    """Baseline: a head trained from zero on the same k windows, no federation, no pretraining
    of the head (the backbone is the shared one)."""
    d = shot_emb.shape[1]
    c = int(max(shot_y.max(), test_y.max())) + 1
    w0 = np.zeros((d, c), np.float32)
    b0 = np.zeros(c, np.float32)
    rng = Rng.from_u64(seed)
    w, b, _ = ref_head.train(w0, b0, shot_emb, shot_y.astype(np.int64), training.params(), rng)
    logits = test_emb @ w + b
    return accuracy(np.argmax(logits, axis=1), test_y)
