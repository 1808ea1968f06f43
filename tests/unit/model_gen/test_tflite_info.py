"""The op check: a model with an op the firmware lacks is refused with the op named."""

from __future__ import annotations

import numpy as np
import pytest

from model_gen.tflite_info import UnsupportedModelError, check_supported, read_tflite


def test_softmax_backbone_is_rejected_naming_the_op() -> None:
    import keras

    from model_gen.quantize import quantize_backbone

    inputs = keras.Input(shape=(16,))
    outputs = keras.layers.Dense(4, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    tflite = quantize_backbone(model, rng.normal(size=(16, 16)).astype(np.float32))
    info = read_tflite(tflite)
    assert "SOFTMAX" in info.ops
    with pytest.raises(UnsupportedModelError, match=r"ops \['SOFTMAX'\] are not supported"):
        check_supported(info)
