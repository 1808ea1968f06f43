"""Randomized single-op graphs: generated C equals the TFLM runtime bit for bit, on both paths.

Each example builds a tiny Keras model, converts it to full int8 with a representative set
drawn to push zero points to their extremes, generates backbone_ref C for it and compares
int8 and dequantized float outputs on a batch of windows that includes -128 and 127: the
portable path on the host (ASan/UBSan), and the DSP path (SMLAD kernels on packed weights)
built for Cortex-M4 and run under unicorn, when arm-none-eabi-gcc is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model_gen.refgen import read_graph
from tests.equivalence.backbone.support import (
    HAVE_M4,
    build_ref_driver,
    convert_int8,
    dequantize,
    m4_ref_outputs,
    random_windows,
    ref_outputs,
    tflm_outputs,
)

WINDOWS = 48
ACTIVATIONS = (None, "relu", "relu6")


@dataclass(frozen=True)
class Case:
    kind: str
    input_shape: tuple[int, int, int]  # H, W, C
    params: dict
    data_loc: float  # representative data offset: far from 0 gives extreme input zero points
    data_spread: float
    seed: int


@st.composite
def cases(draw: st.DrawFn, kinds: tuple[str, ...]) -> Case:
    kind = draw(st.sampled_from(kinds))
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 20))
    c = draw(st.integers(1, 8))
    params: dict = {"activation": draw(st.sampled_from(ACTIVATIONS))}
    if kind in ("conv", "depthwise"):
        kh, kw = draw(st.integers(1, min(h, 3))), draw(st.integers(1, min(w, 5)))
        dilated = draw(st.booleans())
        dil = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) if dilated else (1, 1)
        stride = (1, 1) if dilated else (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
        padding = draw(st.sampled_from(("same", "valid")))
        if padding == "valid" and ((kh - 1) * dil[0] >= h or (kw - 1) * dil[1] >= w):
            dil = (1, 1)
        params |= dict(
            kernel=(kh, kw),
            strides=stride,
            dilation=dil,
            padding=padding,
            use_bias=draw(st.booleans()),
        )
        if kind == "conv":
            params["filters"] = draw(st.integers(1, 9))
        else:
            params["depth_multiplier"] = draw(st.integers(1, 3))
    elif kind in ("max_pool", "avg_pool"):
        params |= dict(
            pool=(draw(st.integers(1, min(h, 3))), draw(st.integers(1, min(w, 4)))),
            strides=(draw(st.integers(1, 2)), draw(st.integers(1, 3))),
            padding=draw(st.sampled_from(("same", "valid"))),
        )
    elif kind == "dense":
        params |= dict(units=draw(st.integers(1, 20)), use_bias=draw(st.booleans()))
    elif kind == "mean":
        params |= dict(keepdims=draw(st.booleans()))
    return Case(
        kind,
        (h, w, c),
        params,
        draw(st.sampled_from((0.0, 4.0, -4.0))),
        draw(st.sampled_from((0.05, 1.0, 30.0))),
        draw(st.integers(0, 2**16)),
    )


def _skew_weights(layer, rng: np.random.Generator) -> None:
    """Give each output channel a very different weight range (diverse per-channel scales)."""
    weights = layer.get_weights()
    kernel = weights[0]
    kernel *= rng.choice([0.01, 0.3, 1.0, 5.0], size=kernel.shape[-1]).astype(kernel.dtype)
    if len(weights) > 1:
        weights[1] = rng.normal(0, 2, size=weights[1].shape).astype(weights[1].dtype)
    layer.set_weights([kernel, *weights[1:]])


def build_model(case: Case):
    import keras
    from keras import layers

    rng = np.random.default_rng(case.seed)
    p = case.params
    inputs = keras.Input(shape=case.input_shape, batch_size=1)
    if case.kind == "conv":
        layer = layers.Conv2D(
            p["filters"],
            p["kernel"],
            strides=p["strides"],
            dilation_rate=p["dilation"],
            padding=p["padding"],
            use_bias=p["use_bias"],
            activation=p["activation"],
        )
    elif case.kind == "depthwise":
        layer = layers.DepthwiseConv2D(
            p["kernel"],
            strides=p["strides"],
            dilation_rate=p["dilation"],
            padding=p["padding"],
            depth_multiplier=p["depth_multiplier"],
            use_bias=p["use_bias"],
            activation=p["activation"],
        )
    elif case.kind == "max_pool":
        layer = layers.MaxPooling2D(p["pool"], strides=p["strides"], padding=p["padding"])
    elif case.kind == "avg_pool":
        layer = layers.AveragePooling2D(p["pool"], strides=p["strides"], padding=p["padding"])
    elif case.kind == "dense":
        flat = layers.Flatten()(inputs)  # RESHAPE, then FULLY_CONNECTED
        layer = layers.Dense(p["units"], use_bias=p["use_bias"], activation=p["activation"])
        outputs = layer(flat)
        _skew_weights(layer, rng)
        return keras.Model(inputs, outputs), rng
    else:
        # MEAN: the converter usually narrows the output range (TFLM's requantizing path);
        # a 1x1 input keeps the input quantization (TFLM's truncating path).
        outputs = layers.GlobalAveragePooling2D(keepdims=p["keepdims"])(inputs)
        return keras.Model(inputs, outputs), rng
    outputs = layer(inputs)
    if case.kind in ("conv", "depthwise"):
        _skew_weights(layer, rng)
    return keras.Model(inputs, outputs), rng


def check_case(case: Case, work: Path) -> None:
    model, rng = build_model(case)
    representative = case.data_loc + case.data_spread * rng.normal(
        size=(32, *case.input_shape)
    ).astype(np.float32)
    tflite = convert_int8(model, representative)
    graph = read_graph(tflite)
    # A 1x1 keepdims mean is an identity the converter removes: nothing left to compare.
    assume(len(graph.ops) > 0)
    out = graph.tensors[graph.output]
    exe = build_ref_driver(tflite, work, name=f"single_{case.kind}")
    windows = random_windows(rng, WINDOWS, int(np.prod(case.input_shape)))
    want = tflm_outputs(tflite, windows)
    got_q, got_f = ref_outputs(exe, windows, want.shape[1])
    ops = [op.name for op in graph.ops]
    np.testing.assert_array_equal(got_q, want, err_msg=f"{case} ops={ops}")
    np.testing.assert_array_equal(got_f, dequantize(want, out.scale, out.zero_point))
    if HAVE_M4:
        m4_q = m4_ref_outputs(work, windows, want.shape[1])
        np.testing.assert_array_equal(m4_q, want, err_msg=f"Cortex-M4 DSP path: {case} ops={ops}")


KINDS = ("conv", "depthwise", "dense", "max_pool", "avg_pool", "mean")
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# Each example converts a model and builds two programs (ASan host, Cortex-M4): minutes on a
# loaded 2-core machine, so this test gets more than the default 600 s.
@pytest.mark.timeout(1500)
@settings(max_examples=60, **_SETTINGS)
@given(case=cases(KINDS))
def test_single_op_graphs_match_tflm(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path / "work")


@pytest.mark.slow
@pytest.mark.timeout(10_000)
@settings(max_examples=400, **_SETTINGS)
@given(case=cases(KINDS))
def test_single_op_graphs_match_tflm_long_sweep(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path / "work")


def _conv_case(shape, kernel, strides, filters, loc, seed, padding="same") -> Case:
    params = dict(
        activation="relu",
        kernel=kernel,
        strides=strides,
        dilation=(1, 1),
        padding=padding,
        use_bias=True,
        filters=filters,
    )
    return Case("conv", shape, params, loc, 1.0, seed)


# Fixed shapes for br_conv2d's two portable paths: the dense one (window gathered with the input
# zero point, two pixels at a time; here kws's 1-input-channel first layer, with an odd pixel
# count and an extreme zero point) and the per-tap one for windows over BR_CONV_GATHER_MAX
# bytes; on the DSP path the 1-channel 3-tap-row gather (odd and even filter heights, windows
# whose word reads reach the end of the input) and the general one.
FIXED_CONV_CASES = [
    _conv_case((15, 12, 1), (5, 3), (2, 2), 24, 4.0, 1),
    _conv_case((9, 7, 1), (5, 3), (2, 2), 7, -4.0, 2),
    _conv_case(
        (10, 9, 1), (4, 3), (1, 2), 8, -4.0, 5, padding="valid"
    ),  # even k_h, rows to the end
    _conv_case((5, 6, 32), (3, 3), (1, 1), 6, 0.0, 3),
    _conv_case((5, 6, 32), (3, 3), (2, 1), 5, 4.0, 4, padding="valid"),
]


# DSP kernel variants, each hit on purpose (extreme zero points, odd widths, both padding
# sides, stride 2): the all-assembly GEMM groups (weight pairs a multiple of 4 or not, a
# 2-channel tail left to the C block), 1x1 convolutions whose columns are gathered two pixels at
# a time (in_c not a multiple of 4, an odd pixel count), a one-channel 5x3 filter whose windows
# reach the right border.
FIXED_DSP_CONV_CASES = [
    _conv_case((5, 7, 8), (1, 1), (1, 1), 12, -4.0, 11),  # 4 pairs: the 4-per-turn loop
    _conv_case((5, 7, 6), (1, 1), (1, 1), 8, 4.0, 12),  # 3 pairs, 6 = 4 + 2 input bytes
    _conv_case((6, 5, 3), (3, 3), (2, 2), 10, 4.0, 13),  # 27 taps: odd pairs, 4 + 4 + 2
    _conv_case((7, 9, 1), (5, 3), (2, 2), 8, -4.0, 14, padding="valid"),
]


def _dw_case(shape, kernel, strides, loc, seed, activation=None, padding="same") -> Case:
    params = dict(
        activation=activation,
        kernel=kernel,
        strides=strides,
        dilation=(1, 1),
        padding=padding,
        use_bias=True,
        depth_multiplier=1,
    )
    return Case("depthwise", shape, params, loc, 1.0, seed)


# The DSP depthwise kernel (channels a multiple of 4): 3x3 in assembly, other filter sizes in
# C; border windows on every side. (The converter gives relu and relu6 outputs a range whose
# clamp is int8's, so these run the unclamped variants too.)
FIXED_DW_CASES = [
    _dw_case((7, 9, 8), (3, 3), (2, 2), -4.0, 21),
    _dw_case((6, 5, 12), (3, 3), (1, 1), 4.0, 22),
    _dw_case((5, 7, 4), (3, 3), (2, 1), 0.0, 23, activation="relu6"),
    _dw_case((6, 7, 8), (2, 3), (1, 2), 4.0, 24, activation="relu"),
    _dw_case((9, 5, 4), (3, 3), (1, 1), -4.0, 25, padding="valid"),
]

# MEAN's DSP sums (four channels per word while at most 256 rows are summed) and its C loop
# (a channel count not a multiple of 4, more than 256 rows).
FIXED_MEAN_CASES = [
    Case("mean", (5, 7, 8), dict(activation=None, keepdims=False), 4.0, 1.0, 31),
    Case("mean", (3, 5, 6), dict(activation=None, keepdims=True), -4.0, 1.0, 32),
    Case("mean", (17, 16, 4), dict(activation=None, keepdims=False), 0.0, 30.0, 33),
]


@pytest.mark.parametrize(
    "case", FIXED_CONV_CASES, ids=lambda c: f"{c.input_shape}{c.params['kernel']}"
)
def test_conv_paths_match_tflm(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path / "work")


@pytest.mark.parametrize(
    "case",
    FIXED_DSP_CONV_CASES + FIXED_DW_CASES + FIXED_MEAN_CASES,
    ids=lambda c: f"{c.kind}{c.input_shape}{c.params.get('kernel', '')}",
)
def test_dsp_kernel_variants_match_tflm(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path / "work")
