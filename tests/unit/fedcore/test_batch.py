"""The vectorized multi-client trainer equals the per-client twin (tools/fedref/head.train)."""

from __future__ import annotations

import numpy as np
import pytest

from tools.fedref import batch, head
from tools.fedref.head import TrainParams
from tools.fedref.rng import Rng


def clients(d: int, c: int, sizes: list[int], seed: int):
    gen = np.random.default_rng(seed)
    centres = gen.normal(0, 1, (c, d))
    labels = [gen.integers(0, c, n) for n in sizes]
    embs = [(centres[y] + gen.normal(0, 0.8, (len(y), d))).astype(np.float32) for y in labels]
    return embs, labels


@pytest.mark.parametrize(
    "params",
    [
        TrainParams(lr=0.1, epochs=5, batch=8),
        TrainParams(lr=0.05, epochs=5, batch=6, momentum=0.9, weight_decay=1e-3, example_clip=0.7),
    ],
)
def test_batch_trainer_equals_per_client_twin(params):
    d, c = 16, 5
    sizes = [1, 7, 20, 33, 8]  # uneven: partial batches, clients finishing early
    embs, labels = clients(d, c, sizes, seed=4)
    gen = np.random.default_rng(0)
    w0 = gen.normal(0, 0.05, (d, c)).astype(np.float32)
    b0 = np.zeros(c, np.float32)
    seeds = [11, 12, 13, 14, 15]
    w, b, loss, acc = batch.train_many(
        w0, b0, embs, labels, params, [Rng.from_u64(s) for s in seeds]
    )
    for k, seed in enumerate(seeds):
        w_k, b_k, res = head.train(w0, b0, embs[k], labels[k], params, Rng.from_u64(seed))
        scale = np.abs(w_k).max()
        np.testing.assert_allclose(w[k], w_k, rtol=1e-6, atol=1e-6 * scale)
        np.testing.assert_allclose(b[k], b_k, rtol=1e-6, atol=1e-6 * scale)
        assert loss[k] == pytest.approx(res.loss, rel=1e-5)
        assert acc[k] == pytest.approx(res.acc)
        assert not np.array_equal(w_k, w0)


def test_batch_trainer_refuses_empty_clients():
    embs, labels = clients(4, 3, [3, 0], seed=1)
    with pytest.raises(ValueError):
        batch.train_many(np.zeros((4, 3)), np.zeros(3), embs, labels, TrainParams(0.1, 1, 2),
                         [Rng.from_u64(1), Rng.from_u64(2)])
