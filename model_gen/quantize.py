"""Full-int8 post-training quantization of the backbone (int8 input and embedding output)."""

from __future__ import annotations

import numpy as np


def quantize_backbone(backbone: object, representative: np.ndarray) -> bytes:
    """Convert a Keras backbone to an int8 .tflite, calibrated on `representative` windows."""
    import tensorflow as tf

    def samples():  # the converter wants batches of one, as float32
        for window in representative:
            yield [window[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(backbone)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def quantize_windows(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float windows -> int8 as TFLite's QUANTIZE kernel does: float32 divide, round half
    away from zero, add the zero point, saturate."""
    scaled = x.astype(np.float32) / np.float32(scale)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)
