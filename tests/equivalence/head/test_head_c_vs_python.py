"""fedcore head training in C (ASan/UBSan) against the Python twin tools/fedref/head.py:
same data, same seed, 5 epochs -> weights within 1e-6 relative, same loss/acc/steps."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.fedcore import cdriver
from tools.fedref import head
from tools.fedref.head import TrainParams
from tools.fedref.rng import Rng

FC_ERR_PARAM, FC_ERR_NONFINITE, FC_ERR_NO_DATA = -1, -2, -3


def clustered_data(d: int, c: int, n: int, seed: int):
    """Embeddings around one centre per class (learnable), plus an initial head."""
    gen = np.random.default_rng(seed)
    centres = gen.normal(0, 1.0, (c, d))
    labels = gen.integers(0, c, n)
    emb = (centres[labels] + gen.normal(0, 0.7, (n, d))).astype(np.float32)
    w0 = gen.normal(0, 0.05, (d, c)).astype(np.float32)
    b0 = gen.normal(0, 0.05, c).astype(np.float32)
    return w0, b0, emb, labels


def assert_weights_match(c_out, w, b):
    scale = max(np.abs(w).max(), np.abs(b).max())
    np.testing.assert_allclose(c_out.w, w, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(c_out.b, b, rtol=1e-6, atol=1e-6 * scale)


CASES = {
    "plain-64x10": (64, 10, TrainParams(lr=0.1, epochs=5, batch=8)),
    "momentum-wd-32x7": (
        32,
        7,
        TrainParams(lr=0.05, epochs=5, batch=16, momentum=0.9, weight_decay=1e-3),
    ),
    "example-clip-64x7": (
        64,
        7,
        TrainParams(lr=0.2, epochs=5, batch=5, momentum=0.5, example_clip=0.5),
    ),
    "batch-larger-than-n": (16, 3, TrainParams(lr=0.3, epochs=5, batch=100)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_c_and_python_agree_after_5_epochs(case):
    d, c, params = CASES[case]
    w0, b0, emb, labels = clustered_data(d, c, 61, seed=len(case))
    c_out = cdriver.train(w0, b0, emb, labels, params, seed=42)
    w, b, res = head.train(w0, b0, emb, labels, params, Rng.from_u64(42))
    assert c_out.status == 0
    assert_weights_match(c_out, w, b)
    # Stronger than required: the same operation order and the same float32 exp/log
    # (fc_expf/fc_logf, replayed in numpy) make the results bit-identical; a drift in either
    # implementation's order shows up at once.
    assert np.array_equal(c_out.w, w) and np.array_equal(c_out.b, b)
    assert not np.array_equal(w, w0)  # it did train
    assert (c_out.examples, c_out.steps) == (res.examples, res.steps)
    assert c_out.steps == params.epochs * -(-61 // params.batch)
    assert c_out.loss == pytest.approx(res.loss, rel=1e-6)
    assert c_out.acc == pytest.approx(res.acc, abs=1e-7)


def test_training_learns_separable_data():
    w0, b0, emb, labels = clustered_data(32, 7, 120, seed=3)
    params = TrainParams(lr=0.1, epochs=5, batch=8, momentum=0.9)
    c_out = cdriver.train(w0, b0, emb, labels, params, seed=1)
    assert c_out.status == 0
    z = emb @ c_out.w + c_out.b
    assert np.mean(np.argmax(z, axis=1) == labels) > 0.95
    assert c_out.acc > 0.9 and c_out.loss < 0.5


def test_ring_buffer_keeps_the_newest_examples_oldest_first():
    # 25 examples into a ring of 9: training must use the last 9, in arrival order.
    w0, b0, emb, labels = clustered_data(8, 4, 25, seed=5)
    params = TrainParams(lr=0.1, epochs=5, batch=4, momentum=0.9)
    c_out = cdriver.train(w0, b0, emb, labels, params, seed=8, capacity=9)
    w, b, _ = head.train(w0, b0, emb[-9:], labels[-9:], params, Rng.from_u64(8))
    assert c_out.status == 0 and c_out.examples == 9
    assert_weights_match(c_out, w, b)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"lr": 0.0}, FC_ERR_PARAM),
        ({"lr": float("nan")}, FC_ERR_NONFINITE),
        ({"batch": 0}, FC_ERR_PARAM),
        ({"epochs": 0}, FC_ERR_PARAM),
        ({"momentum": 1.0}, FC_ERR_PARAM),
        ({"weight_decay": -1.0}, FC_ERR_PARAM),
        ({"example_clip": float("inf")}, FC_ERR_NONFINITE),
    ],
)
def test_bad_params_refused_head_unchanged(change, status):
    w0, b0, emb, labels = clustered_data(8, 3, 10, seed=1)
    fields = {"lr": 0.1, "epochs": 2, "batch": 4, **change}
    params = TrainParams(**fields)
    c_out = cdriver.train(w0, b0, emb, labels, params, seed=1)
    assert c_out.status == status
    assert np.array_equal(c_out.w, w0) and np.array_equal(c_out.b, b0)
    with pytest.raises(ValueError):
        head.train(w0, b0, emb, labels, params, Rng.from_u64(1))


def test_no_examples_refused():
    w0, b0, _, _ = clustered_data(8, 3, 1, seed=1)
    c_out = cdriver.train(w0, b0, np.zeros((0, 8)), np.zeros(0), TrainParams(0.1, 1, 1), seed=1)
    assert c_out.status == FC_ERR_NO_DATA


@pytest.mark.parametrize(
    ("label", "bad_value", "status"), [(3, None, FC_ERR_PARAM), (0, float("nan"), FC_ERR_NONFINITE)]
)
def test_bad_examples_refused(label, bad_value, status):
    """A label >= C or a NaN embedding is refused when the example is added."""
    w0, b0, emb, labels = clustered_data(8, 3, 4, seed=1)
    if bad_value is not None:
        emb[2, 5] = bad_value
    labels[2] = label
    c_out = cdriver.train(w0, b0, emb, labels, TrainParams(0.1, 1, 1), seed=1)
    assert c_out.status == status


def test_divergence_reported_as_nonfinite():
    w0, b0, emb, labels = clustered_data(8, 3, 20, seed=2)
    c_out = cdriver.train(w0, b0, emb * 1e30, labels, TrainParams(1e30, 3, 2), seed=1)
    assert c_out.status == FC_ERR_NONFINITE


def test_imprint_alone_is_bit_identical_and_is_a_nearest_mean_classifier():
    w0, b0, emb, labels = clustered_data(32, 7, 70, seed=11)
    labels[labels == 6] = 5  # class 6 has no examples: its column must stay as it was
    no_training = TrainParams(lr=0.1, epochs=0, batch=8)
    c_out = cdriver.train(w0, b0, emb, labels, no_training, seed=1, imprint=1.0)
    w, b = head.imprint(w0, b0, emb, labels, 1.0)
    assert c_out.status == 0
    assert np.array_equal(c_out.w, w) and np.array_equal(c_out.b, b)
    assert np.array_equal(w[:, 6], w0[:, 6]) and b[6] == b0[6]
    means = np.stack([emb[labels == k].mean(0) for k in range(6)])
    np.testing.assert_allclose(w[:, :6] - w0[:, :6], means.T, rtol=1e-5, atol=1e-6)
    # with a zero start it is exactly nearest class mean
    wz, bz = head.imprint(np.zeros_like(w0), np.zeros_like(b0), emb, labels, 1.0)
    nearest = np.argmin(((emb[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(np.argmax((emb @ wz + bz)[:, :6], axis=1) == nearest) > 0.98


@pytest.mark.parametrize("strength", [0.5, 2.0])
def test_train_then_imprint_is_bit_identical(strength):
    """The device's TRAIN_IMPRINT order: training from the head, then the prototypes."""
    w0, b0, emb, labels = clustered_data(64, 7, 61, seed=12)
    params = TrainParams(lr=0.1, epochs=5, batch=8, momentum=0.5)
    c_out = cdriver.train(w0, b0, emb, labels, params, seed=3, capacity=40, imprint=strength)
    last = slice(-40, None)  # the ring keeps the last 40
    w, b, res = head.train(w0, b0, emb[last], labels[last], params, Rng.from_u64(3))
    w, b = head.imprint(w, b, emb[last], labels[last], strength)
    assert c_out.status == 0
    assert np.array_equal(c_out.w, w) and np.array_equal(c_out.b, b)
    assert (c_out.examples, c_out.steps) == (res.examples, res.steps)


@pytest.mark.parametrize(
    ("strength", "status"), [(float("nan"), FC_ERR_NONFINITE), (-1.0, FC_ERR_PARAM)]
)
def test_bad_imprint_strength_refused_head_unchanged(strength, status):
    w0, b0, emb, labels = clustered_data(8, 3, 10, seed=1)
    no_training = TrainParams(lr=0.1, epochs=0, batch=4)
    c_out = cdriver.train(w0, b0, emb, labels, no_training, seed=1, imprint=strength)
    assert c_out.status == status
    assert np.array_equal(c_out.w, w0) and np.array_equal(c_out.b, b0)
    with pytest.raises(ValueError):
        head.imprint(w0, b0, emb, labels, strength)
