"""Server holdout evaluation of a head on (embedding, label) pairs the caller provides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Holdout:
    embeddings: np.ndarray  # n×D float
    labels: np.ndarray  # n int

    @classmethod
    def from_npz(
        cls, path: Path, embedding_key: str = "embedding", label_key: str = "y"
    ) -> Holdout:
        data = np.load(path)
        return cls(data[embedding_key].astype(np.float32), data[label_key].astype(np.int64))


def evaluate(w: np.ndarray, b: np.ndarray, holdout: Holdout) -> dict[str, float]:
    """Accuracy and mean cross-entropy of softmax(e·W + b)."""
    logits = holdout.embeddings.astype(np.float64) @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = len(holdout.labels)
    loss = -float(log_probs[np.arange(n), holdout.labels].mean())
    accuracy = float((logits.argmax(axis=1) == holdout.labels).mean())
    return {"accuracy": accuracy, "loss": loss}


def holdout_from_task(model_dir: Path) -> Holdout:
    """Embeddings of the held-out users (never federated) from build/model/<task>/.

    Rows of embeddings.npz align with devices.npz; a row belongs to the holdout when its
    device's split is "heldout"."""
    devices = np.load(model_dir / "devices.npz")
    embeddings = np.load(model_dir / "embeddings.npz")["embedding"]
    heldout = devices["device_split"][devices["device"]] == "heldout"
    if not heldout.any():
        raise ValueError(f"{model_dir}/devices.npz has no held-out device; rerun `invoke train`")
    return Holdout(embeddings[heldout].astype(np.float32), devices["y"][heldout].astype(np.int64))
