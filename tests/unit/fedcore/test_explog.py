"""fc_expf / fc_logf (fedcore/head.c) against their numpy float32 twins and against libm.

The head's softmax uses them instead of double-precision exp/log, so the twin must reproduce
them bit for bit on every input (special values included), and they must stay accurate."""

from __future__ import annotations

import numpy as np

from tests.unit.fedcore import cdriver
from tools.fedref.head import expf, logf

F32 = np.float32


def exp_inputs() -> np.ndarray:
    gen = np.random.default_rng(0)
    dense = np.linspace(-90, 1, 200_001, dtype=F32)
    near_zero = -np.logspace(-30, 0, 2001).astype(F32)
    special = np.array([0.0, -0.0, np.nan, -np.inf, np.inf, -80.0, -80.00001, 3.5], dtype=F32)
    return np.concatenate([dense, near_zero, special, gen.uniform(-88, 0, 50_000).astype(F32)])


def log_inputs() -> np.ndarray:
    gen = np.random.default_rng(1)
    positive = np.exp(gen.uniform(-87, 88, 100_000)).astype(F32)
    softmax_range = np.linspace(1, 16, 100_001, dtype=F32)
    special = np.array([0.0, -1.0, np.nan, np.inf, 1e-40, 1.17549435e-38, 1.0, 2.0], dtype=F32)
    return np.concatenate([positive, softmax_range, special])


def test_expf_is_bit_identical_to_the_c():
    x = exp_inputs()
    c_exp, _ = cdriver.exp_log(x)
    assert np.array_equal(c_exp.view(np.uint32), expf(x).view(np.uint32))


def test_logf_is_bit_identical_to_the_c():
    x = log_inputs()
    _, c_log = cdriver.exp_log(x)
    assert np.array_equal(c_log, logf(x), equal_nan=True)
    assert np.array_equal(np.isnan(c_log), np.isnan(logf(x)))


def test_expf_is_accurate_where_softmax_uses_it():
    x = np.linspace(-80, 0, 400_001, dtype=F32)
    exact = np.exp(x.astype(np.float64))
    rel = np.abs(expf(x).astype(np.float64) - exact) / exact
    assert rel.max() < 4e-7  # a few float32 ulp
    assert expf(np.array([-80.5, np.nan, -np.inf], dtype=F32)).tolist() == [0.0, 0.0, 0.0]
    assert expf(np.array([0.0], dtype=F32))[0] == 1.0


def test_logf_is_accurate_on_softmax_sums():
    x = np.linspace(1, 16, 100_001, dtype=F32)
    err = np.abs(logf(x).astype(np.float64) - np.log(x.astype(np.float64)))
    assert err.max() < 1e-6
    assert logf(np.array([1.0], dtype=F32))[0] == 0.0
    special = logf(np.array([0.0, -1.0, np.inf], dtype=F32))
    assert special[0] == -np.inf and np.isnan(special[1]) and special[2] == np.inf
