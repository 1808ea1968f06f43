"""Vectorized head training for many clients at once (the simulator's fast path).

Every client runs exactly tools/fedref/head.train — its own examples, its own ChaCha20 shuffle
stream, the same optimizer settings — but the float32 arithmetic is done for all clients in one
numpy operation. Clients with fewer examples are padded; padded slots add exact zeros and
finished clients are held still, so each client's result equals the per-client twin
(tests/unit/fedcore/test_batch.py proves it).
"""

from __future__ import annotations

import numpy as np

from tools.fedref.head import F32, TrainParams, expf, logf, shuffle
from tools.fedref.rng import Rng


def _forward(w: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    """(K, d, c), (K, c), (K, d) -> (K, c); sequential sum over d like fc_head_forward."""
    terms = np.concatenate([b[:, None, :], e[:, :, None] * w], axis=1)
    return np.cumsum(terms, axis=1, dtype=F32)[:, -1]


def _softmax_xent(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(y))
    shifted = z - z[rows, np.argmax(z, axis=1)][:, None]
    p = expf(shifted)
    s = np.cumsum(p, axis=1, dtype=F32)[:, -1]
    loss = logf(s) - shifted[rows, y]
    return p / s[:, None], loss


def _clip_grads(g: np.ndarray, e: np.ndarray, clip: np.float32) -> np.ndarray:
    ee = np.cumsum(e * e, axis=1, dtype=F32)[:, -1]
    gg = np.cumsum(g * g, axis=1, dtype=F32)[:, -1]
    norm = np.sqrt(gg * (ee + F32(1)))
    factor = np.where(norm > clip, clip / np.where(norm > 0, norm, F32(1)), F32(1))
    return np.where((norm > clip)[:, None], g * factor[:, None], g)


def _epoch_orders(counts: np.ndarray, rngs: list[Rng], orders: list[list[int]]) -> np.ndarray:
    """Shuffle every client's order (its own stream) and pad to (K, max n) with -1."""
    table = np.full((len(counts), int(counts.max())), -1, dtype=np.int64)
    for k, order in enumerate(orders):
        shuffle(order, rngs[k])
        table[k, : counts[k]] = order
    return table


def train_many(
    w: np.ndarray,
    b: np.ndarray,
    embeddings: list[np.ndarray],
    labels: list[np.ndarray],
    params: TrainParams,
    rngs: list[Rng],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train K clients from the same starting head (w (d, c), b (c)) or from per-client heads
    (w (K, d, c), b (K, c)). Returns (w (K, d, c), b (K, c), loss (K,), acc (K,))."""
    params.check()
    n_clients = len(labels)
    counts = np.array([len(y) for y in labels])
    if n_clients == 0 or counts.min() == 0:
        raise ValueError("every client needs examples")
    d, c = np.shape(w)[-2:]
    w = np.broadcast_to(np.asarray(w, F32), (n_clients, d, c)).copy()
    b = np.broadcast_to(np.asarray(b, F32), (n_clients, c)).copy()
    emb = np.zeros((n_clients, counts.max() + 1, d), F32)  # last row: the padding example
    lab = np.zeros((n_clients, counts.max() + 1), np.int64)
    for k in range(n_clients):
        emb[k, : counts[k]] = embeddings[k]
        lab[k, : counts[k]] = labels[k]
    lr, mom, wd = F32(params.lr), F32(params.momentum), F32(params.weight_decay)
    clip, batch = F32(params.example_clip), params.batch
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    orders = [list(range(n)) for n in counts]
    rows = np.arange(n_clients)
    steps_per_client = -(-counts // batch)
    for _ in range(params.epochs):
        table = _epoch_orders(counts, rngs, orders)
        loss_sum = np.zeros(n_clients, F32)
        correct = np.zeros(n_clients, np.int64)
        for step in range(int(steps_per_client.max())):
            stepping = step < steps_per_client
            gw, gb = np.zeros_like(w), np.zeros_like(b)
            for slot in range(step * batch, (step + 1) * batch):
                idx = table[:, slot] if slot < table.shape[1] else np.full(n_clients, -1)
                live = idx >= 0
                pick = np.where(live, idx, counts)  # padding row for finished clients
                e, y = emb[rows, pick], lab[rows, pick]
                z = _forward(w, b, e)
                p, loss = _softmax_xent(z, y)
                loss_sum = np.where(live, loss_sum + loss, loss_sum)
                correct += live & (np.argmax(z, axis=1) == y)
                g = p.copy()
                g[rows, y] -= F32(1)
                if clip > 0:
                    g = _clip_grads(g, e, clip)
                g = np.where(live[:, None], g, F32(0))
                gw = gw + e[:, :, None] * g[:, None, :]
                gb = gb + g
            in_batch = np.clip(counts - step * batch, 1, batch).astype(F32)
            k = (F32(1) / in_batch).astype(F32)
            new_vw = mom * vw + (gw * k[:, None, None] + wd * w)
            new_vb = mom * vb + gb * k[:, None]
            vw = np.where(stepping[:, None, None], new_vw, vw)
            vb = np.where(stepping[:, None], new_vb, vb)
            w = np.where(stepping[:, None, None], w - lr * vw, w)
            b = np.where(stepping[:, None], b - lr * vb, b)
    loss = loss_sum / counts.astype(F32)
    acc = correct.astype(F32) / counts.astype(F32)
    return w, b, loss, acc
