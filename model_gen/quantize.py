"""Full-int8 post-training quantization of the backbone (int8 input and embedding output)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

import numpy as np


@contextlib.contextmanager
def quiet_native_output(show_on_error: bool = True) -> Iterator[None]:
    """Silence TensorFlow / TFLM chatter (Python and C++ writes to fds 1 and 2).

    The text is kept and, with `show_on_error`, shown if the block fails.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException:
            _restore(saved)
            if show_on_error:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            _restore(saved)


def _restore(saved: list[int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in zip((1, 2), saved, strict=True):
        with contextlib.suppress(OSError):
            os.dup2(copy, fd)


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
    with quiet_native_output():
        return bytes(converter.convert())


def quantize_windows(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float windows -> int8 as TFLite's QUANTIZE kernel does: float32 divide, round half
    away from zero, add the zero point, saturate."""
    scaled = x.astype(np.float32) / np.float32(scale)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)
