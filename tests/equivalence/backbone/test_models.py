"""Whole backbones: generated C equals the TFLM runtime bit for bit on >= 500 windows each,
on the portable path (host, ASan/UBSan) and the DSP path (Cortex-M4 build under unicorn).

The project models (build/model/<task>/, from `invoke train --task T`) are checked on their
own device windows plus random ones; a small multi-layer model built here covers every op
kind together (including depthwise and average pooling the project models may not use).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_gen import paths
from model_gen.refgen import generate_backbone_ref, plan_arena, read_graph, render
from model_gen.tflite_info import UnsupportedModelError
from tests.equivalence.backbone.support import (
    HAVE_M4,
    HEADER,
    build_ref_driver,
    convert_int8,
    dequantize,
    m4_ref_outputs,
    random_windows,
    ref_outputs,
    tflm_outputs,
)

MIN_WINDOWS = 500


def mixed_backbone():
    """Every supported op in one graph, shaped like the project's IMU backbone."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(1, 64, 6), batch_size=1)
    x = layers.Conv2D(16, (1, 5), padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D((1, 2))(x)
    x = layers.DepthwiseConv2D((1, 3), strides=(1, 2), padding="same", activation="relu6")(x)
    x = layers.Conv2D(24, (1, 3), padding="valid", dilation_rate=(1, 2), activation="relu")(x)
    x = layers.AveragePooling2D((1, 2), padding="same")(x)
    flat = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(flat)
    x = layers.Reshape((1, 4, 8))(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(16, activation="relu")(x))


def assert_matches_tflm(tflite: bytes, windows: np.ndarray, work: Path, name: str) -> None:
    graph = read_graph(tflite)
    out = graph.tensors[graph.output]
    exe = build_ref_driver(tflite, work, name=name)
    want = tflm_outputs(tflite, windows)
    got_q, got_f = ref_outputs(exe, windows, want.shape[1])
    mismatched = int(np.count_nonzero(np.any(got_q != want, axis=1)))
    assert mismatched == 0, f"{mismatched} of {len(windows)} windows differ from TFLM"
    np.testing.assert_array_equal(got_f, dequantize(want, out.scale, out.zero_point))
    if HAVE_M4:  # the DSP path with its assembly blocks, and with the C ones (-DBR_NO_ASM)
        for flags in ((), ("-DBR_NO_ASM",)):
            m4_q = m4_ref_outputs(work, windows, want.shape[1], flags)
            mismatched = int(np.count_nonzero(np.any(m4_q != want, axis=1)))
            assert mismatched == 0, f"DSP path {flags}: {mismatched} of {len(windows)} differ"


def test_mixed_backbone_matches_tflm(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    representative = rng.normal(size=(64, 1, 64, 6)).astype(np.float32)
    tflite = convert_int8(mixed_backbone(), representative)
    ops = {op.name for op in read_graph(tflite).ops}
    assert {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "MAX_POOL_2D",
        "AVERAGE_POOL_2D",
        "MEAN",
        "RESHAPE",
    } <= ops, ops
    windows = random_windows(rng, MIN_WINDOWS + 12, 64 * 6)
    assert_matches_tflm(tflite, windows, tmp_path, "mixed_backbone")


def banded_backbone():
    """Conv/depthwise pairs the generator runs banded (br_conv_banded): a tall 2-D filter with
    stride and top padding feeding a depthwise layer, and a 1x1 conv feeding a dilated 3x3."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(23, 10, 2), batch_size=1)
    x = layers.Conv2D(8, (5, 3), strides=(2, 1), padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D((3, 3), strides=(2, 2), padding="same", activation="relu6")(x)
    x = layers.Conv2D(12, (1, 1), activation="relu")(x)
    x = layers.Conv2D(8, (3, 3), dilation_rate=(2, 1), padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(16)(x))


def test_banded_backbone_matches_tflm(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    tflite = convert_int8(banded_backbone(), rng.normal(size=(64, 23, 10, 2)).astype(np.float32))
    text, numbers = render(read_graph(tflite), HEADER)
    assert text.count("br_conv_banded(&") == 2, "both pairs should run banded"
    whole = sum(read_graph(tflite).tensors[op.outputs[0]].size for op in read_graph(tflite).ops)
    assert numbers["arena_bytes"] < whole
    windows = random_windows(rng, MIN_WINDOWS + 12, 23 * 10 * 2)
    assert_matches_tflm(tflite, windows, tmp_path, "banded_backbone")


@pytest.mark.parametrize("task", paths.TASKS)
def test_project_backbone_matches_tflm(task: str, tmp_path: Path) -> None:
    folder = paths.model_dir(task)
    tflite_path = folder / paths.TFLITE_NAME
    if not tflite_path.exists():
        pytest.skip(f"{tflite_path} missing: run `invoke train --task {task}` first")
    tflite = tflite_path.read_bytes()
    size = read_graph(tflite).tensors[read_graph(tflite).input].size
    with np.load(folder / paths.DEVICES_NAME) as devices:
        real = devices["x"].reshape(len(devices["x"]), -1)
    rng = np.random.default_rng(11)
    picked = real[rng.choice(len(real), size=min(len(real), MIN_WINDOWS), replace=False)]
    windows = np.concatenate([picked, random_windows(rng, 100, size)])
    assert len(windows) >= MIN_WINDOWS
    assert_matches_tflm(tflite, windows, tmp_path, f"project_{task}")


def test_unsupported_op_is_named_with_its_layer(tmp_path: Path) -> None:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(1, 8, 2), batch_size=1)
    x = layers.Conv2D(4, (1, 3))(inputs)
    model = keras.Model(inputs, layers.Activation("tanh", name="squash")(x))
    tflite = convert_int8(model, np.random.default_rng(0).normal(size=(8, 1, 8, 2)))
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite)
    with pytest.raises(
        UnsupportedModelError,
        match=r"unsupported op TANH: operator 1 \(TANH, "
        r"output tensor '.+'\)",
    ):
        generate_backbone_ref(path, tmp_path / "out", HEADER)
    assert not (tmp_path / "out" / "backbone_ref_model.c").exists()


def test_arena_plan_never_overlaps_live_tensors() -> None:
    rng = np.random.default_rng(3)
    tflite = convert_int8(mixed_backbone(), rng.normal(size=(16, 1, 64, 6)).astype(np.float32))
    graph = read_graph(tflite)
    where, arena = plan_arena(graph)
    buffers = {id(b): b for b in where.values() if b is not None}.values()
    for a in buffers:
        assert a.offset % 4 == 0 and a.offset + a.size <= arena
        for b in buffers:
            lifetimes_overlap = a.first <= b.last and b.first <= a.last
            memory_overlaps = a.offset < b.offset + b.size and b.offset < a.offset + a.size
            assert a is b or not (lifetimes_overlap and memory_overlaps), (a, b)
    activations = sum(b.size for b in buffers)
    assert arena < activations  # sharing happened: the plan beats one buffer per tensor
